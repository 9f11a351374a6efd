/**
 * Small dense float64 linear algebra on the CPU, for evaluation metrics (FD-LeNet):
 *
 * - `symmetricEigen`: eigen-decomposition of a real symmetric matrix by the cyclic Jacobi method
 *   (exact to rounding for the 84..128-dimensional feature covariances used here; O(n^3) per sweep,
 *   typically 6..10 sweeps).
 * - `sqrtmPsd`: the symmetric square root V diag(sqrt(max(w, 0))) V^T of a symmetric positive
 *   semi-definite matrix.
 * - `meanCov`: mean and unbiased (N - 1) covariance of the rows of a feature matrix, in float64.
 * - `frechetDistance`: |mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1^{1/2} C2 C1^{1/2})^{1/2}).
 *
 * Matrices are row-major `Float64Array`s of n*n values.
 */

/** Eigenvalues (ascending) and eigenvectors (column k of the row-major n*n `vectors` belongs to values[k]). */
export interface SymmetricEigen {
  values: Float64Array;
  vectors: Float64Array;
  /** Jacobi sweeps used. */
  sweeps: number;
}

function checkSquare(a: ArrayLike<number>, n: number, what: string): void {
  if (!Number.isInteger(n) || n < 0 || a.length !== n * n) {
    throw new RangeError(`${what}: expected an ${n}x${n} matrix (${n * n} values), got ${a.length} values`);
  }
}

/**
 * Eigen-decomposition A = V diag(w) V^T of a symmetric n*n matrix (row-major) by cyclic Jacobi
 * rotations (Golub & Van Loan, Alg. 8.5.3, with the stable rotation of Rutishauser). Only the
 * symmetric part (A + A^T)/2 is used. V is orthonormal to rounding; eigenvalues are sorted ascending.
 */
export function symmetricEigen(a: ArrayLike<number>, n: number, opts: { maxSweeps?: number } = {}): SymmetricEigen {
  checkSquare(a, n, 'symmetricEigen');
  const maxSweeps = opts.maxSweeps ?? 100;
  const A = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) A[i * n + j] = 0.5 * (a[i * n + j] + a[j * n + i]);
  for (let i = 0; i < n * n; i++) {
    if (!Number.isFinite(A[i])) throw new RangeError(`symmetricEigen: matrix entry ${i} is ${A[i]}`);
  }
  const V = new Float64Array(n * n);
  for (let i = 0; i < n; i++) V[i * n + i] = 1;

  let total = 0;
  for (let i = 0; i < n * n; i++) total += A[i] * A[i];
  let sweeps = 0;
  for (; sweeps < maxSweeps; sweeps++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += A[p * n + q] * A[p * n + q];
    // converged when the off-diagonal mass is negligible relative to the whole matrix
    if (off <= 1e-30 * total || off === 0) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = A[p * n + q];
        if (apq === 0) continue;
        const app = A[p * n + p];
        const aqq = A[q * n + q];
        // skip rotations whose effect is below rounding of both diagonal entries
        if (sweeps > 3 && Math.abs(apq) * 1e18 < Math.abs(app) && Math.abs(apq) * 1e18 < Math.abs(aqq)) {
          A[p * n + q] = A[q * n + p] = 0;
          continue;
        }
        const theta = (aqq - app) / (2 * apq);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        const tau = s / (1 + c);
        A[p * n + p] = app - t * apq;
        A[q * n + q] = aqq + t * apq;
        A[p * n + q] = A[q * n + p] = 0;
        for (let r = 0; r < n; r++) {
          if (r === p || r === q) continue;
          const arp = A[r * n + p];
          const arq = A[r * n + q];
          const nrp = arp - s * (arq + tau * arp);
          const nrq = arq + s * (arp - tau * arq);
          A[r * n + p] = A[p * n + r] = nrp;
          A[r * n + q] = A[q * n + r] = nrq;
        }
        for (let r = 0; r < n; r++) {
          const vrp = V[r * n + p];
          const vrq = V[r * n + q];
          V[r * n + p] = vrp - s * (vrq + tau * vrp);
          V[r * n + q] = vrq + s * (vrp - tau * vrq);
        }
      }
    }
  }
  if (sweeps === maxSweeps) throw new Error(`symmetricEigen: no convergence in ${maxSweeps} Jacobi sweeps (n = ${n})`);

  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => A[i * n + i] - A[j * n + j]);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((src, k) => {
    values[k] = A[src * n + src];
    for (let r = 0; r < n; r++) vectors[r * n + k] = V[r * n + src];
  });
  return { values, vectors, sweeps };
}

/** V diag(f(w)) V^T from an eigen-decomposition. */
export function fromEigen(eig: { values: ArrayLike<number>; vectors: ArrayLike<number> }, n: number, f: (w: number) => number = (w) => w): Float64Array {
  const fw = Float64Array.from({ length: n }, (_, k) => f(eig.values[k]));
  const V = eig.vectors;
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += V[i * n + k] * fw[k] * V[j * n + k];
      out[i * n + j] = out[j * n + i] = s;
    }
  }
  return out;
}

/**
 * Symmetric square root of a symmetric positive semi-definite matrix: V diag(sqrt(w)) V^T.
 * Eigenvalues below zero (rounding of a PSD matrix) are clipped to 0; a clearly negative one
 * (below -1e-8 of the largest |eigenvalue|) is an error, since the input is then not PSD.
 */
export function sqrtmPsd(a: ArrayLike<number>, n: number): Float64Array {
  const eig = symmetricEigen(a, n);
  const scale = n > 0 ? Math.max(Math.abs(eig.values[0]), Math.abs(eig.values[n - 1])) : 0;
  if (n > 0 && eig.values[0] < -1e-8 * scale) {
    throw new RangeError(`sqrtmPsd: matrix is not positive semi-definite (smallest eigenvalue ${eig.values[0]}, largest ${eig.values[n - 1]})`);
  }
  return fromEigen(eig, n, (w) => Math.sqrt(Math.max(w, 0)));
}

/** C = A B for row-major n*n matrices. */
export function matmulSquare(a: ArrayLike<number>, b: ArrayLike<number>, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      const aik = a[i * n + k];
      if (aik === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j] += aik * b[k * n + j];
    }
  }
  return out;
}

export interface Gaussian {
  mu: Float64Array;
  cov: Float64Array;
  /** dimension */
  d: number;
  /** samples it was estimated from (0 when given analytically) */
  n: number;
}

/**
 * Mean and unbiased covariance (divides by N - 1, like numpy.cov and pytorch-fid) of the N rows of
 * a row-major N*d feature matrix, accumulated in float64 (two passes: mean, then centred products).
 */
export function meanCov(features: ArrayLike<number>, n: number, d: number): Gaussian {
  if (!Number.isInteger(n) || !Number.isInteger(d) || n < 2 || d < 1 || features.length !== n * d) {
    throw new RangeError(`meanCov: need at least 2 rows of ${d} features (${n} rows, ${features.length} values given)`);
  }
  const mu = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mu[j] += features[i * d + j];
  for (let j = 0; j < d; j++) mu[j] /= n;
  const cov = new Float64Array(d * d);
  const row = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) row[j] = features[i * d + j] - mu[j];
    for (let j = 0; j < d; j++) {
      const rj = row[j];
      if (rj === 0) continue;
      for (let k = j; k < d; k++) cov[j * d + k] += rj * row[k];
    }
  }
  for (let j = 0; j < d; j++) {
    for (let k = j; k < d; k++) {
      const v = cov[j * d + k] / (n - 1);
      cov[j * d + k] = cov[k * d + j] = v;
    }
  }
  return { mu, cov, d, n };
}

/**
 * Frechet (2-Wasserstein) distance between N(mu1, C1) and N(mu2, C2):
 *   |mu1 - mu2|^2 + tr(C1) + tr(C2) - 2 tr((C1^{1/2} C2 C1^{1/2})^{1/2}).
 * The cross term is computed from the eigenvalues of the symmetric PSD matrix
 * M = C1^{1/2} C2 C1^{1/2} (its trace square root is sum sqrt(max(eig, 0))), so no non-symmetric
 * square root (scipy's sqrtm of C1 C2) is needed and no imaginary parts appear. Tiny negative
 * results from rounding are clamped to 0.
 */
export function frechetDistance(mu1: ArrayLike<number>, cov1: ArrayLike<number>, mu2: ArrayLike<number>, cov2: ArrayLike<number>): number {
  const d = mu1.length;
  if (mu2.length !== d) throw new RangeError(`frechetDistance: means have ${d} and ${mu2.length} dimensions`);
  checkSquare(cov1, d, 'frechetDistance (cov1)');
  checkSquare(cov2, d, 'frechetDistance (cov2)');
  let meanTerm = 0;
  for (let j = 0; j < d; j++) meanTerm += (mu1[j] - mu2[j]) ** 2;
  let tr1 = 0;
  let tr2 = 0;
  for (let j = 0; j < d; j++) {
    tr1 += cov1[j * d + j];
    tr2 += cov2[j * d + j];
  }
  const s1 = sqrtmPsd(cov1, d);
  const m = matmulSquare(matmulSquare(s1, cov2, d), s1, d);
  const { values } = symmetricEigen(m, d);
  let trSqrt = 0;
  for (const w of values) trSqrt += Math.sqrt(Math.max(w, 0));
  return Math.max(0, meanTerm + tr1 + tr2 - 2 * trSqrt);
}

/** Frechet distance between two Gaussians given as `meanCov` results. */
export function frechetDistanceGaussians(a: Gaussian, b: Gaussian): number {
  if (a.d !== b.d) throw new RangeError(`frechetDistance: Gaussians have ${a.d} and ${b.d} dimensions`);
  return frechetDistance(a.mu, a.cov, b.mu, b.cov);
}
