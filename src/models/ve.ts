// The variance-exploding (VE) diffusion the 2-D experiment compares the Kac flow with: x_t = x_0 +
// sigma(t) eps, with a geometric or a Brownian sigma schedule, sampled by the probability-flow ODE.

export type VeSchedule = 'geometric' | 'brownian';
export const VE_SCHEDULES: readonly VeSchedule[] = ['geometric', 'brownian'];
/** What the VE network outputs: the velocity sigma'(t) eps itself, or eps (velocity = sigma'(t) * output). */
export type VeParam = 'velocity' | 'eps';
export const VE_PARAMS: readonly VeParam[] = ['velocity', 'eps'];

export interface VeConfig {
  schedule: VeSchedule;
  /** geometric: sigma(0) */
  sigmaMin: number;
  /** geometric: sigma(T); the Gaussian prior's std */
  sigmaMax: number;
  /** brownian: sigma(t) = sigmaB sqrt(t) */
  sigmaB: number;
  T: number;
  param: VeParam;
}

export const defaultVeConfig: Readonly<VeConfig> = Object.freeze({ schedule: 'geometric', sigmaMin: 1e-5, sigmaMax: 5, sigmaB: 1, T: 1, param: 'velocity' });

export function veConfig(partial: Partial<VeConfig> = {}): VeConfig {
  const cfg: VeConfig = { ...defaultVeConfig, ...partial };
  if (!VE_SCHEDULES.includes(cfg.schedule)) throw new Error(`VeConfig.schedule must be one of ${VE_SCHEDULES.join(', ')} (got ${String(cfg.schedule)})`);
  if (!VE_PARAMS.includes(cfg.param)) throw new Error(`VeConfig.param must be one of ${VE_PARAMS.join(', ')} (got ${String(cfg.param)})`);
  for (const k of ['sigmaMin', 'sigmaMax', 'sigmaB', 'T'] as const) {
    if (!(cfg[k] > 0) || !Number.isFinite(cfg[k])) throw new Error(`VeConfig.${k} must be a finite number > 0 (got ${cfg[k]})`);
  }
  if (!(cfg.sigmaMax > cfg.sigmaMin)) throw new Error(`VeConfig: sigmaMax (${cfg.sigmaMax}) must exceed sigmaMin (${cfg.sigmaMin})`);
  return cfg;
}

/** sigma(t): geometric sigma_min (sigma_max/sigma_min)^(t/T); brownian sigma_B sqrt(t). */
export function veSigma(t: number, ve: VeConfig): number {
  return ve.schedule === 'geometric' ? ve.sigmaMin * Math.pow(ve.sigmaMax / ve.sigmaMin, t / ve.T) : ve.sigmaB * Math.sqrt(t);
}

/** sigma'(t): geometric sigma(t) log(sigma_max/sigma_min) / T; brownian sigma_B / (2 sqrt(t)) (infinite at 0). */
export function veDSigma(t: number, ve: VeConfig): number {
  return ve.schedule === 'geometric' ? (veSigma(t, ve) * Math.log(ve.sigmaMax / ve.sigmaMin)) / ve.T : ve.sigmaB / (2 * Math.sqrt(t));
}
