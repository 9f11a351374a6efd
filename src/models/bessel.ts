/**
 * Exponentially scaled modified Bessel functions of the first kind, orders 0 and 1, in float64.
 *
 * Why scaled: the Kac law and velocity need I0(z), I1(z) for z up to a*c*s/c = a*s (hundreds or
 * more), where I0 overflows near z = 713; e^{-|z|} I_n(z) stays O(1/sqrt(z)) and ratios of them are
 * exact. Algorithm: the Chebyshev expansions of the Cephes library (S. L. Moshier, release 2.8, as
 * used by scipy.special.i0e/i1e): one series on [0, 8], one in 32/x on (8, inf). Relative error
 * about 2e-15.
 */

// Chebyshev coefficients for exp(-x) I0(x) on [0, 8]; lim(x->0) = 1. Highest order first.
const I0_A = [
  -4.4153416464793393795e-18, 3.33079451882223809783e-17, -2.43127984654795469359e-16,
  1.71539128555513303061e-15, -1.16853328779934516808e-14, 7.67618549860493561688e-14,
  -4.8564467831119294609e-13, 2.95505266312963983461e-12, -1.72682629144155570723e-11,
  9.67580903537323691224e-11, -5.18979560163526290666e-10, 2.65982372468238665035e-9,
  -1.30002500998624804212e-8, 6.04699502254191894932e-8, -2.67079385394061173391e-7,
  1.11738753912010371815e-6, -4.41673835845875056359e-6, 1.64484480707288970893e-5,
  -5.75419501008210370398e-5, 1.88502885095841655729e-4, -5.76375574538582365885e-4,
  1.63947561694133579842e-3, -4.3243099950505759443e-3, 1.05464603945949983183e-2,
  -2.37374148058994688156e-2, 4.93052842396707084878e-2, -9.4901097048047644421e-2,
  1.71620901522208775349e-1, -3.04682672343198398683e-1, 6.76795274409476084995e-1,
];

// Chebyshev coefficients for exp(-x) sqrt(x) I0(x) in 32/x on [8, inf); limit 1/sqrt(2 pi).
const I0_B = [
  -7.23318048787475395456e-18, -4.83050448594418207126e-18, 4.46562142029675999901e-17,
  3.4612228676974610931e-17, -2.82762398051658348494e-16, -3.42548561967721913462e-16,
  1.7725601330565263836e-15, 3.81168066935262242075e-15, -9.5548466988283076487e-15,
  -4.15056934728722208663e-14, 1.54008621752140982691e-14, 3.85277838274214270114e-13,
  7.18012445138366623367e-13, -1.79417853150680611778e-12, -1.32158118404477131188e-11,
  -3.14991652796324136454e-11, 1.18891471078464383424e-11, 4.9406023882249695891e-10,
  3.39623202570838634515e-9, 2.26666899049817806459e-8, 2.04891858946906374183e-7,
  2.89137052083475648297e-6, 6.88975834691682398426e-5, 3.3691164782556940899e-3,
  8.04490411014108831608e-1,
];

// Chebyshev coefficients for exp(-x) I1(x) / x on [0, 8]; lim(x->0) = 1/2.
const I1_A = [
  2.77791411276104639959e-18, -2.11142121435816608115e-17, 1.55363195773620046921e-16,
  -1.10559694773538630805e-15, 7.6006842947354069341e-15, -5.04218550472791168711e-14,
  3.22379336594557470981e-13, -1.9839743977649437152e-12, 1.17361862988909016308e-11,
  -6.66348972350202774223e-11, 3.62559028155211703701e-10, -1.8872497517228292879e-9,
  9.38153738649577178388e-9, -4.44505912879632808065e-8, 2.00329475355213526229e-7,
  -8.56872026469545474066e-7, 3.47025130813767847674e-6, -1.32731636560394358279e-5,
  4.78156510755005422638e-5, -1.61760815825896745588e-4, 5.12285956168575772895e-4,
  -1.51357245063125314899e-3, 4.15642294431288815669e-3, -1.05640848946261981558e-2,
  2.47264490306265168283e-2, -5.29459812080949914269e-2, 1.02643658689847095384e-1,
  -1.76416518357834055153e-1, 2.52587186443633654823e-1,
];

// Chebyshev coefficients for exp(-x) sqrt(x) I1(x) in 32/x on [8, inf); limit 1/sqrt(2 pi).
const I1_B = [
  7.51729631084210481353e-18, 4.41434832307170791151e-18, -4.65030536848935832153e-17,
  -3.2095259219934239598e-17, 2.96262899764595013876e-16, 3.30820231092092828324e-16,
  -1.88035477551078244854e-15, -3.81440307243700780478e-15, 1.04202769841288027642e-14,
  4.27244001671195135429e-14, -2.10154184277266431302e-14, -4.08355111109219731823e-13,
  -7.19855177624590851209e-13, 2.03562854414708950722e-12, 1.41258074366137813316e-11,
  3.25260358301548823856e-11, -1.8974958123505412345e-11, -5.58974346219658380687e-10,
  -3.83538038596423702205e-9, -2.63146884688951950684e-8, -2.51223623787020892529e-7,
  -3.88256480887769039346e-6, -1.10588938762623716291e-4, -9.76109749136146840777e-3,
  7.78576235018280120474e-1,
];

/** Clenshaw evaluation of a Cephes-style Chebyshev series (`chbevl`): sum' c_i T_i(y/2). */
function chbevl(y: number, coef: readonly number[]): number {
  let b0 = coef[0]!;
  let b1 = 0;
  let b2 = 0;
  for (let i = 1; i < coef.length; i++) {
    b2 = b1;
    b1 = b0;
    b0 = y * b1 - b2 + coef[i]!;
  }
  return 0.5 * (b0 - b2);
}

/** e^{-|x|} I0(x). Even in x. i0e(0) = 1; i0e(x) ~ 1/sqrt(2 pi x) as x -> inf; i0e(inf) = 0. */
export function i0e(x: number): number {
  const ax = Math.abs(x);
  if (ax <= 8) return chbevl(ax / 2 - 2, I0_A);
  return chbevl(32 / ax - 2, I0_B) / Math.sqrt(ax);
}

/**
 * e^{-|x|} I1(x) / x, for x != 0, and its limit 1/2 at x = 0. Even in x. Why: `I1(z)/z` appears in
 * the Kac density (`a c s / r * I1(z)`) and velocity, and is smooth at z = 0 where `r` vanishes (the
 * light cone); computing it directly avoids 0/0.
 */
export function i1eOverX(x: number): number {
  const ax = Math.abs(x);
  if (ax <= 8) return chbevl(ax / 2 - 2, I1_A);
  return chbevl(32 / ax - 2, I1_B) / (Math.sqrt(ax) * ax);
}

/** e^{-|x|} I1(x). Odd in x. i1e(0) = 0; i1e(x) ~ 1/sqrt(2 pi x) as x -> inf. */
export function i1e(x: number): number {
  const ax = Math.abs(x);
  let r: number;
  if (ax <= 8) r = chbevl(ax / 2 - 2, I1_A) * ax;
  else r = chbevl(32 / ax - 2, I1_B) / Math.sqrt(ax);
  return x < 0 ? -r : r;
}

/**
 * I1(z)/I0(z) in (-1, 1), odd in z; never overflows (ratio of the scaled functions, whose common
 * factor e^{|z|} cancels). Limits: z/2 near 0, 1 - 1/(2z) as z -> inf, exactly +-1 at +-inf.
 */
export function besselRatioI1I0(z: number): number {
  if (z === Infinity) return 1;
  if (z === -Infinity) return -1;
  return i1e(z) / i0e(z);
}

/**
 * z I0(z)/I1(z) (= z / besselRatioI1I0(z)), even, >= 2, with its limit 2 at z = 0. Why: the Kac
 * velocity denominator `s + (r/c) I0(z)/I1(z)` equals `s + zI0OverI1(z)/a`, finite at r = 0.
 * Behaves like z + 1/2 for large z; +inf at +-inf.
 */
export function zI0OverI1(z: number): number {
  const az = Math.abs(z);
  if (az === Infinity) return Infinity;
  // For large z, i1e(z)/z would underflow (z ~ 1e300); z * (i0e/i1e) does not.
  return az <= 8 ? i0e(az) / i1eOverX(az) : az * (i0e(az) / i1e(az));
}
