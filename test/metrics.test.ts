// The float64 linear algebra behind FD-LeNet (src/eval/linalg.ts), CPU only: Jacobi
// eigen-decomposition against reconstructions and known spectra, symmetric PSD square roots, and the
// Frechet distance against closed forms (diagonal, 1-D, 2-D non-commuting) and sample estimates.
import { describe, expect, it } from 'vitest';
import { Philox } from '../src/engine/philox';
import { fromEigen, frechetDistance, frechetDistanceGaussians, matmulSquare, meanCov, sqrtmPsd, symmetricEigen } from '../src/eval/linalg';

function randomSymmetric(n: number, rng: Philox): Float64Array {
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) a[i * n + j] = a[j * n + i] = rng.normal();
  return a;
}

/** A random orthogonal matrix: product of n Householder reflections of Gaussian vectors. */
function randomOrthogonal(n: number, rng: Philox): Float64Array {
  let q: Float64Array = new Float64Array(n * n);
  for (let i = 0; i < n; i++) q[i * n + i] = 1;
  for (let k = 0; k < n; k++) {
    const v = Float64Array.from({ length: n }, () => rng.normal());
    const norm2 = v.reduce((s, x) => s + x * x, 0);
    const h = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) h[i * n + j] = (i === j ? 1 : 0) - (2 * v[i] * v[j]) / norm2;
    q = matmulSquare(q, h, n);
  }
  return q;
}

/** Q diag(w) Q^T */
function withSpectrum(q: Float64Array, w: number[]): Float64Array {
  return fromEigen({ values: w, vectors: q }, w.length);
}

function transpose(a: Float64Array, n: number): Float64Array {
  const t = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) t[j * n + i] = a[i * n + j];
  return t;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

const identity = (n: number) => {
  const e = new Float64Array(n * n);
  for (let i = 0; i < n; i++) e[i * n + i] = 1;
  return e;
};

/** Samples of N(mu, L L^T): rows mu + L z. */
function gaussianSamples(n: number, mu: number[], l: Float64Array, rng: Philox): Float64Array {
  const d = mu.length;
  const out = new Float64Array(n * d);
  const z = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) z[j] = rng.normal();
    for (let j = 0; j < d; j++) {
      let s = mu[j];
      for (let k = 0; k < d; k++) s += l[j * d + k] * z[k];
      out[i * d + j] = s;
    }
  }
  return out;
}

describe('symmetricEigen (cyclic Jacobi, float64)', () => {
  it.each([1, 2, 5, 17, 84, 128])('reconstructs a random symmetric matrix of size %i with orthonormal eigenvectors', (n) => {
    const rng = new Philox(100 + n);
    const a = randomSymmetric(n, rng);
    const { values, vectors, sweeps } = symmetricEigen(a, n);
    const scale = Math.max(1, maxAbs(a));
    expect(maxAbsDiff(fromEigen({ values, vectors }, n), a)).toBeLessThan(1e-12 * scale * n);
    expect(maxAbsDiff(matmulSquare(transpose(vectors, n), vectors, n), identity(n))).toBeLessThan(1e-12 * n);
    for (let k = 1; k < n; k++) expect(values[k]).toBeGreaterThanOrEqual(values[k - 1]);
    // trace is the sum of eigenvalues
    let tr = 0;
    for (let i = 0; i < n; i++) tr += a[i * n + i];
    expect(values.reduce((s, w) => s + w, 0)).toBeCloseTo(tr, 9);
    expect(sweeps).toBeLessThan(20);
  });

  it('recovers known spectra, including repeated, zero and negative eigenvalues', () => {
    const rng = new Philox(7);
    const n = 30;
    const q = randomOrthogonal(n, rng);
    const w = Array.from({ length: n }, (_, i) => (i < 5 ? 0 : i < 10 ? 2.5 : i < 12 ? -3 : i * 0.37 - 1));
    const { values, vectors } = symmetricEigen(withSpectrum(q, w), n);
    const sorted = [...w].sort((x, y) => x - y);
    expect(maxAbsDiff(values, sorted)).toBeLessThan(1e-12);
    // eigenvectors of simple eigenvalues match Q's columns up to sign
    const simple = sorted.map((x, k) => (sorted.filter((y) => Math.abs(y - x) < 1e-9).length === 1 ? k : -1)).filter((k) => k >= 0);
    for (const k of simple) {
      const src = w.indexOf(sorted[k]);
      let dot = 0;
      for (let r = 0; r < n; r++) dot += vectors[r * n + k] * q[r * n + src];
      expect(Math.abs(dot)).toBeCloseTo(1, 10);
    }
  });

  it('handles a widely spread spectrum (1e-10 .. 1e6) to absolute accuracy of about eps * ||A||', () => {
    const rng = new Philox(8);
    const n = 20;
    const w = Array.from({ length: n }, (_, i) => 10 ** (-10 + (16 * i) / (n - 1)));
    const { values } = symmetricEigen(withSpectrum(randomOrthogonal(n, rng), w), n);
    // absolute error ~ eps * ||A|| (||A|| = 1e6)
    for (let k = 0; k < n; k++) expect(Math.abs(values[k] - w[k])).toBeLessThan(1e-8);
  });

  it('matches the 2x2 closed form and leaves diagonal matrices alone', () => {
    const [a, b, c] = [2, 1.5, -1];
    const { values } = symmetricEigen([a, b, b, c], 2);
    const m = (a + c) / 2;
    const r = Math.hypot((a - c) / 2, b);
    expect(values[0]).toBeCloseTo(m - r, 14);
    expect(values[1]).toBeCloseTo(m + r, 14);

    const d = symmetricEigen([3, 0, 0, 0, -1, 0, 0, 0, 2], 3);
    expect([...d.values]).toEqual([-1, 2, 3]);
    expect(d.sweeps).toBe(0);
    expect([...symmetricEigen(new Float64Array(16), 4).values]).toEqual([0, 0, 0, 0]);
  });

  it('rejects non-square input and non-finite entries', () => {
    expect(() => symmetricEigen([1, 2, 3], 2)).toThrow(/2x2/);
    expect(() => symmetricEigen([1, NaN, NaN, 1], 2)).toThrow(/NaN/);
  });
});

describe('sqrtmPsd', () => {
  it.each([3, 20, 84])('sqrtm(A)^2 = A for a random full-rank PSD matrix of size %i; the root is symmetric PSD', (n) => {
    const rng = new Philox(200 + n);
    const b = randomSymmetric(n, rng);
    const a = matmulSquare(b, transpose(b, n), n); // B B^T
    const s = sqrtmPsd(a, n);
    expect(maxAbsDiff(s, transpose(s, n))).toBe(0);
    expect(maxAbsDiff(matmulSquare(s, s, n), a)).toBeLessThan(1e-11 * maxAbs(a));
    expect(symmetricEigen(s, n).values[0]).toBeGreaterThanOrEqual(-1e-10);
  });

  it('handles rank-deficient PSD matrices (rounding-negative eigenvalues clipped)', () => {
    const rng = new Philox(5);
    const n = 40;
    const r = 7;
    const b = new Float64Array(n * n); // only r non-zero columns: rank r
    for (let i = 0; i < n; i++) for (let j = 0; j < r; j++) b[i * n + j] = rng.normal();
    const a = matmulSquare(b, transpose(b, n), n);
    const s = sqrtmPsd(a, n);
    expect(maxAbsDiff(matmulSquare(s, s, n), a)).toBeLessThan(1e-10 * maxAbs(a));
  });

  it('is the elementwise root of a diagonal matrix, and refuses indefinite matrices', () => {
    expect([...sqrtmPsd([4, 0, 0, 9], 2)]).toEqual([2, 0, 0, 3]);
    expect(() => sqrtmPsd([1, 0, 0, -1], 2)).toThrow(/positive semi-definite/);
  });
});

describe('meanCov', () => {
  it('matches numpy.cov (unbiased) on a small example', () => {
    // rows: (1, 2), (3, 5), (5, 11) -> mean (3, 6); cov [[4, 9], [9, 21]]
    const g = meanCov([1, 2, 3, 5, 5, 11], 3, 2);
    expect([...g.mu]).toEqual([3, 6]);
    expect(maxAbsDiff(g.cov, [4, 9, 9, 21])).toBeLessThan(1e-14);
    expect(g.n).toBe(3);
  });

  it('is accurate for data with a large offset (two-pass, float64)', () => {
    const rng = new Philox(3);
    const n = 1000;
    const x = Float64Array.from({ length: n }, () => 1e6 + rng.normal());
    const g = meanCov(x, n, 1);
    const mu = x.reduce((s, v) => s + v, 0) / n;
    const v = x.reduce((s, t) => s + (t - mu) ** 2, 0) / (n - 1);
    expect(g.cov[0]).toBeCloseTo(v, 9);
  });

  it('refuses fewer than two rows', () => {
    expect(() => meanCov([1, 2], 1, 2)).toThrow(/at least 2 rows/);
  });
});

describe('frechetDistance', () => {
  it('matches |mu1 - mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2 for diagonal covariances', () => {
    const rng = new Philox(11);
    const d = 12;
    const mu1 = Array.from({ length: d }, () => rng.normal());
    const mu2 = Array.from({ length: d }, () => rng.normal());
    const s1 = Array.from({ length: d }, () => rng.uniform() * 3);
    const s2 = Array.from({ length: d }, () => rng.uniform() * 3);
    const diag = (s: number[]) => {
      const c = new Float64Array(d * d);
      s.forEach((v, i) => (c[i * d + i] = v));
      return c;
    };
    let expected = 0;
    for (let i = 0; i < d; i++) expected += (mu1[i] - mu2[i]) ** 2 + (Math.sqrt(s1[i]) - Math.sqrt(s2[i])) ** 2;
    expect(frechetDistance(mu1, diag(s1), mu2, diag(s2))).toBeCloseTo(expected, 11);
    // the same Gaussians in a rotated basis (the distance is rotation invariant)
    const q = randomOrthogonal(d, rng);
    const rot = (c: Float64Array) => matmulSquare(matmulSquare(q, c, d), transpose(q, d), d);
    const rotMu = (m: number[]) => Array.from({ length: d }, (_, i) => m.reduce((s, v, k) => s + q[i * d + k] * v, 0));
    expect(frechetDistance(rotMu(mu1), rot(diag(s1)), rotMu(mu2), rot(diag(s2)))).toBeCloseTo(expected, 9);
  });

  it('matches the 1-D closed form (m1 - m2)^2 + (sigma1 - sigma2)^2', () => {
    expect(frechetDistance([1], [4], [-2], [0.25])).toBeCloseTo(9 + (2 - 0.5) ** 2, 14);
    expect(frechetDistance([0], [0], [0], [9])).toBeCloseTo(9, 14);
  });

  it('matches the 2-D closed form for non-commuting covariances', () => {
    // For 2x2 PSD M: tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)); M = C1^{1/2} C2 C1^{1/2} has
    // tr M = tr(C1 C2) and det M = det C1 det C2.
    const c1 = [2, 0.8, 0.8, 1];
    const c2 = [0.5, -0.3, -0.3, 3];
    const trC1C2 = c1[0] * c2[0] + c1[1] * c2[2] + c1[2] * c2[1] + c1[3] * c2[3];
    const det = (c: number[]) => c[0] * c[3] - c[1] * c[2];
    const trSqrt = Math.sqrt(trC1C2 + 2 * Math.sqrt(det(c1) * det(c2)));
    const expected = (1 - 0.5) ** 2 + (2 + 1) ** 2 + 3 + 3.5 - 2 * trSqrt;
    expect(frechetDistance([1, 2], c1, [0.5, -1], c2)).toBeCloseTo(expected, 12);
  });

  it('is symmetric and zero for identical Gaussians, positive otherwise', () => {
    const rng = new Philox(13);
    const d = 84;
    const feats = (shift: number) => Float64Array.from({ length: 300 * d }, (_, i) => Math.max(0, rng.normal() + shift * Math.sin(i % d)));
    const a = meanCov(feats(0), 300, d);
    const b = meanCov(feats(0.3), 300, d);
    const ab = frechetDistanceGaussians(a, b);
    const ba = frechetDistanceGaussians(b, a);
    expect(ab).toBeGreaterThan(0);
    expect(Math.abs(ab - ba)).toBeLessThan(1e-9 * ab);
    // covariances of 300 ReLU features in 84 dimensions: rank-deficient is fine too
    expect(frechetDistanceGaussians(a, a)).toBeLessThan(1e-9 * ab);
    const few = meanCov(feats(0).subarray(0, 20 * d), 20, d); // rank <= 19 of 84
    expect(frechetDistanceGaussians(few, few)).toBeLessThan(1e-8);
  });

  it('estimated from samples of two known Gaussians, converges to the closed form', () => {
    const rng = new Philox(17);
    const d = 4;
    // C = L L^T with lower-triangular L
    const l1 = Float64Array.from([1, 0, 0, 0, 0.5, 1.2, 0, 0, -0.3, 0.2, 0.8, 0, 0.1, -0.4, 0.3, 1.5]);
    const l2 = Float64Array.from([0.7, 0, 0, 0, -0.2, 0.9, 0, 0, 0.6, 0.1, 1.1, 0, 0, 0.3, -0.5, 0.6]);
    const cov = (l: Float64Array) => matmulSquare(l, transpose(l, d), d);
    const mu1 = [0, 1, -1, 0.5];
    const mu2 = [0.3, 0.8, -1, 0];
    const exact = frechetDistance(mu1, cov(l1), mu2, cov(l2));
    expect(exact).toBeGreaterThan(0.5);
    const errors: number[] = [];
    for (const n of [1000, 10_000, 100_000]) {
      const a = meanCov(gaussianSamples(n, mu1, l1, rng), n, d);
      const b = meanCov(gaussianSamples(n, mu2, l2, rng), n, d);
      errors.push(Math.abs(frechetDistanceGaussians(a, b) - exact));
    }
    expect(errors[2]).toBeLessThan(0.02 * exact);
    expect(errors[2]).toBeLessThan(errors[0]);
  });

  it('rejects mismatched dimensions', () => {
    expect(() => frechetDistance([0, 0], [1, 0, 0, 1], [0], [1])).toThrow(/dimensions/);
    expect(() => frechetDistance([0, 0], [1, 0, 0], [0, 0], [1, 0, 0, 1])).toThrow(/2x2/);
  });
});
