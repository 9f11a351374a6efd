// The image velocity network u_theta(x, t, y): a DDPM/ADM-style UNet.
//
//   t -> sinusoidal(t * timeScale) -> Linear -> SiLU -> Linear  ─┐
//   y -> Embedding(numClasses + 1)  (row numClasses = "null")  ──+-> emb  (dim 4 * baseChannels)
//
//   x -> conv3x3 -> [down levels: numResBlocks ResBlocks (+ attention at the lowest level), then a
//   stride-2 conv except at the last level] -> middle: ResBlock, (attention), ResBlock -> [up levels:
//   numResBlocks + 1 ResBlocks, each on concat(h, skip) along channels, then upsample2x + conv3x3
//   except at the first level] -> GroupNorm -> SiLU -> conv3x3 (zero-initialised) -> velocity
//
// ResBlock(in -> out): h = conv3x3(SiLU(GN(x))); h += Linear(SiLU(emb)) per channel;
// h = conv3x3(SiLU(GN(h))); return h + (in == out ? x : conv1x1(x)).
// Attention: single head over the H*W positions: GN, 1x1 conv to q, k, v, softmax(q^T k / sqrt(C)),
// 1x1 output projection, residual.
//
// Resolutions. MNIST is 28x28. Downsampling is a 3x3 stride-2 conv with padding 1, so sizes go
// 28 -> 14 -> 7 (ceil(n / 2)); upsampling is nearest 2x, which only inverts that for even sizes, so
// every resolution except the lowest must be even: 28 allows at most three levels (28, 14, 7). We stop
// there rather than pad 28 to 32: padding would cost 31% more work at every level and only buy a 4x4
// level, which a 28x28 digit does not need (at 7x7 one 3x3 conv already spans 3/7 of the image).
// The constructor checks this and says which sizes fail.
//
// The final conv is zero-initialised, so an untrained network outputs exactly 0 (common practice for
// stable starts). Everything else uses PyTorch's default init (nn.ts).
import { Conv2d, Embedding, GroupNorm, Linear, Module, Tensor, concat, tensor } from '../engine/index';
import { DEFAULT_TIME_SCALE, timestepEmbedding } from './embeddings';

export interface UNetConfig {
  /** image channels (1 for MNIST) */
  inChannels: number;
  /** square image side (28 for MNIST) */
  imageSize: number;
  /** channels at the first level */
  baseChannels: number;
  /** channels of level i = baseChannels * channelMults[i]; one level per entry, halving the size */
  channelMults: number[];
  /** residual blocks per level on the way down (the way up has one more, for the extra skip) */
  numResBlocks: number;
  /** single-head self-attention after each residual block at the lowest resolution and in the middle */
  attentionAtLowest: boolean;
  /** number of real classes; label numClasses is the null class (classifier-free guidance). 0: unconditional */
  numClasses: number;
  /** GroupNorm groups (must divide every channel count, including concatenations with skips) */
  groups: number;
  /** t is multiplied by this before the sinusoidal embedding (default 1000, see embeddings.ts) */
  timeScale?: number;
}

const MNIST = { inChannels: 1, imageSize: 28, numClasses: 10 } as const;

/**
 * Presets for 1-channel 28x28 MNIST with 10 classes (plus the null class), sized by measuring a
 * training step (forward + backward + AdamW) on two CPU cores with the software GPUs. llvmpipe
 * (opengl) is the faster backend there; a step costs a fixed overhead per kernel launched plus
 * ~0.37 s per forward GFLOP (measured before GroupNorm was fused). Other jobs loaded the machine while
 * measuring, so CPU time per step is the figure quoted (wall time on an idle machine lies between
 * half of it, both cores busy, and all of it).
 * - tiny:  67k parameters, 0.80 GFLOP forward at batch 32; 0.66 s CPU per step at batch 32 on opengl:
 *          ~0.35-0.6 s per step, 1,500 steps in ~10-15 minutes.
 * - small: 149k parameters, 1.75 GFLOP forward at batch 32; 2.1 s CPU per step at batch 64 on opengl:
 *          6,000 steps of batch 64 take ~2-3 h at today's engine speed, not the 1 h aimed for (a wider
 *          network would be slower still); the width is set for quality over tiny, not to the hour.
 * - base:  6.5M parameters, for real GPUs (DDPM-like: 64 channels, 2 res blocks per level, attention
 *          at 7x7); tens of seconds per step on a CPU.
 * All three use three levels, 28 -> 14 -> 7.
 */
export const unetPresets: Record<'tiny' | 'small' | 'base', UNetConfig> = {
  tiny: { ...MNIST, baseChannels: 8, channelMults: [1, 2, 2], numResBlocks: 1, attentionAtLowest: false, groups: 4 },
  small: { ...MNIST, baseChannels: 12, channelMults: [1, 2, 2], numResBlocks: 1, attentionAtLowest: false, groups: 4 },
  base: { ...MNIST, baseChannels: 64, channelMults: [1, 2, 2], numResBlocks: 2, attentionAtLowest: true, groups: 32 },
};

const RGB32 = { inChannels: 3, imageSize: 32, numClasses: 10 } as const;

/**
 * Presets for 3-channel (RGB) 32x32 images with 10 classes, CIFAR-10's shape (any RGB 32x32 data:
 * `--data cifar10`, RGB PNG folders), kept apart from `unetPresets` so that record stays the
 * MNIST presets the committed checkpoints and the PyTorch twin use. Levels 32 -> 16 -> 8 (-> 4).
 * - cifar-small: the `small` network (12 base channels, one res block per level, no attention) on
 *   32x32x3 (2.3 GFLOP forward at batch 32), sized to train on this machine's software GPU: 3.4 s
 *   per step at batch 32 on llvmpipe, measured with the 2 cores shared (load ~5): ~1 h per 1,000 steps.
 * - cifar-paper: the proportions of the DDPM CIFAR-10 UNet the papers' CIFAR-10 setting builds on
 *   (128 base channels, multipliers 1, 2, 2, 2, two res blocks per level), for GPUs; about 35M
 *   parameters. **Deviation:** our UNet has attention only at the lowest level and in the middle
 *   (4x4 here), where DDPM puts it at 16x16, and no dropout.
 */
export const rgbUnetPresets: Record<'cifar-small' | 'cifar-paper', UNetConfig> = {
  'cifar-small': { ...RGB32, baseChannels: 12, channelMults: [1, 2, 2], numResBlocks: 1, attentionAtLowest: false, groups: 4 },
  'cifar-paper': { ...RGB32, baseChannels: 128, channelMults: [1, 2, 2, 2], numResBlocks: 2, attentionAtLowest: true, groups: 32 },
};

/** Every preset by name: the MNIST ones (`unetPresets`) and the RGB 32x32 ones (`rgbUnetPresets`). */
export const allUnetPresets: Record<string, UNetConfig> = { ...unetPresets, ...rgbUnetPresets };
export const UNET_PRESET_NAMES = Object.keys(allUnetPresets);

// ---- blocks ---------------------------------------------------------------------------------------

/** SiLU(norm(x)) in GroupNorm's fused kernels (one dispatch forward instead of a norm and a SiLU). */
function normSilu(norm: GroupNorm, x: Tensor): Tensor {
  return x.groupNorm(norm.groups, norm.weight, norm.bias, norm.eps, { silu: true });
}

export class ResBlock extends Module {
  norm1: GroupNorm;
  conv1: Conv2d;
  emb: Linear;
  norm2: GroupNorm;
  conv2: Conv2d;
  skip: Conv2d | null;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    embDim: number,
    groups: number,
  ) {
    super();
    this.norm1 = new GroupNorm(groups, inChannels);
    this.conv1 = new Conv2d(inChannels, outChannels, 3, { padding: 1 });
    this.emb = new Linear(embDim, outChannels);
    this.norm2 = new GroupNorm(groups, outChannels);
    this.conv2 = new Conv2d(outChannels, outChannels, 3, { padding: 1 });
    this.skip = inChannels === outChannels ? null : new Conv2d(inChannels, outChannels, 1);
  }
  /** x [B, in, H, W], embAct = SiLU(emb) [B, embDim] */
  forward(x: Tensor, embAct: Tensor): Tensor {
    let h = this.conv1.forward(normSilu(this.norm1, x));
    h = h.add(this.emb.forward(embAct).reshape([-1, this.outChannels, 1, 1]));
    h = this.conv2.forward(normSilu(this.norm2, h));
    return h.add(this.skip ? this.skip.forward(x) : x);
  }
}

export class AttentionBlock extends Module {
  norm: GroupNorm;
  qkv: Conv2d;
  proj: Conv2d;
  constructor(
    readonly channels: number,
    groups: number,
  ) {
    super();
    this.norm = new GroupNorm(groups, channels);
    this.qkv = new Conv2d(channels, 3 * channels, 1);
    this.proj = new Conv2d(channels, channels, 1);
  }
  forward(x: Tensor): Tensor {
    const [b, c, h, w] = x.shape;
    const n = h * w;
    const qkv = this.qkv.forward(this.norm.forward(x)).reshape([b, 3 * c, n]);
    const q = qkv.slice([0, 0, 0], [b, c, n]);
    const k = qkv.slice([0, c, 0], [b, 2 * c, n]);
    const v = qkv.slice([0, 2 * c, 0], [b, 3 * c, n]);
    // scores[b, i, j] = q[:, i] . k[:, j] / sqrt(c); out[:, i] = sum_j softmax_j(scores[i, :]) v[:, j]
    const attn = q.transpose(1, 2).matmul(k).mul(1 / Math.sqrt(c)).softmax(-1); // [b, n, n]
    const out = v.matmul(attn.transpose(1, 2)).reshape([b, c, h, w]); // [b, c, n]
    return x.add(this.proj.forward(out));
  }
}

export class Downsample extends Module {
  conv: Conv2d;
  constructor(channels: number) {
    super();
    this.conv = new Conv2d(channels, channels, 3, { stride: 2, padding: 1 });
  }
  forward(x: Tensor): Tensor {
    return this.conv.forward(x);
  }
}

export class Upsample extends Module {
  conv: Conv2d;
  constructor(channels: number) {
    super();
    this.conv = new Conv2d(channels, channels, 3, { padding: 1 });
  }
  forward(x: Tensor): Tensor {
    return this.conv.forward(x.upsample2x());
  }
}

/** One step of the UNet's plan: the same list drives the down path, the up path, and unetFlops. */
export type DownStep = { kind: 'res'; cin: number; cout: number; size: number; attn: boolean } | { kind: 'down'; ch: number; size: number };
export type UpStep = { kind: 'res'; cin: number; cout: number; size: number; attn: boolean } | { kind: 'up'; ch: number; size: number };

export interface Plan {
  down: DownStep[];
  mid: { ch: number; size: number };
  up: UpStep[];
  /** channels of every skip tensor, in the order they are pushed */
  skips: number[];
  embDim: number;
}

function validate(cfg: UNetConfig): void {
  const ints: [string, number, number][] = [
    ['inChannels', cfg.inChannels, 1], ['imageSize', cfg.imageSize, 1], ['baseChannels', cfg.baseChannels, 1],
    ['numResBlocks', cfg.numResBlocks, 1], ['numClasses', cfg.numClasses, 0], ['groups', cfg.groups, 1],
  ];
  for (const [name, v, min] of ints) if (!Number.isInteger(v) || v < min) throw new Error(`UNet: ${name} must be an integer >= ${min}, got ${v}`);
  if (cfg.channelMults.length === 0 || cfg.channelMults.some((m) => !Number.isInteger(m) || m < 1)) {
    throw new Error(`UNet: channelMults must be a non-empty list of positive integers, got [${cfg.channelMults.join(', ')}]`);
  }
  let size = cfg.imageSize;
  for (let i = 0; i < cfg.channelMults.length - 1; i++) {
    if (size % 2 !== 0) {
      throw new Error(
        `UNet: ${cfg.channelMults.length} levels need the image size to stay even down to the last one, but level ${i} is ${size}x${size} ` +
          `(image ${cfg.imageSize}: use fewer channelMults, e.g. 3 levels for 28 -> 14 -> 7)`,
      );
    }
    size /= 2;
  }
  if (cfg.timeScale !== undefined && !(Number.isFinite(cfg.timeScale) && cfg.timeScale > 0)) throw new Error(`UNet: timeScale must be positive, got ${cfg.timeScale}`);
}

export function plan(cfg: UNetConfig): Plan {
  validate(cfg);
  const base = cfg.baseChannels;
  const last = cfg.channelMults.length - 1;
  const down: DownStep[] = [];
  const up: UpStep[] = [];
  const skips = [base];
  let ch = base;
  let size = cfg.imageSize;
  cfg.channelMults.forEach((m, level) => {
    const attn = cfg.attentionAtLowest && level === last;
    for (let r = 0; r < cfg.numResBlocks; r++) {
      down.push({ kind: 'res', cin: ch, cout: base * m, size, attn });
      ch = base * m;
      skips.push(ch);
    }
    if (level < last) {
      down.push({ kind: 'down', ch, size });
      size /= 2;
      skips.push(ch);
    }
  });
  const mid = { ch, size };
  const pending = [...skips];
  for (let level = last; level >= 0; level--) {
    const attn = cfg.attentionAtLowest && level === last;
    const cout = base * cfg.channelMults[level];
    for (let r = 0; r <= cfg.numResBlocks; r++) {
      up.push({ kind: 'res', cin: ch + pending.pop()!, cout, size, attn });
      ch = cout;
    }
    if (level > 0) {
      up.push({ kind: 'up', ch, size });
      size *= 2;
    }
  }
  return { down, mid, up, skips, embDim: 4 * base };
}

// ---- the network ----------------------------------------------------------------------------------

export class UNet extends Module {
  readonly config: UNetConfig;
  timeMlp1: Linear;
  timeMlp2: Linear;
  classEmb: Embedding;
  inConv: Conv2d;
  /** down path: ResBlocks and Downsamples in order (attention kept alongside, by index) */
  down: (ResBlock | Downsample)[];
  downAttn: (AttentionBlock | null)[];
  mid1: ResBlock;
  midAttn: AttentionBlock | null;
  mid2: ResBlock;
  up: (ResBlock | Upsample)[];
  upAttn: (AttentionBlock | null)[];
  outNorm: GroupNorm;
  outConv: Conv2d;

  constructor(config: UNetConfig) {
    super();
    this.config = { ...config, channelMults: [...config.channelMults] };
    const p = plan(this.config);
    const { baseChannels: base, groups } = this.config;
    for (const ch of new Set([...p.skips, ...p.up.filter((s) => s.kind === 'res').map((s) => (s as { cin: number }).cin)])) {
      if (ch % groups !== 0) throw new Error(`UNet: GroupNorm groups ${groups} do not divide ${ch} channels (a level or a concatenation with a skip); choose groups dividing baseChannels`);
    }
    this.timeMlp1 = new Linear(base, p.embDim);
    this.timeMlp2 = new Linear(p.embDim, p.embDim);
    this.classEmb = new Embedding(this.config.numClasses + 1, p.embDim);
    this.inConv = new Conv2d(this.config.inChannels, base, 3, { padding: 1 });
    this.down = p.down.map((s) => (s.kind === 'res' ? new ResBlock(s.cin, s.cout, p.embDim, groups) : new Downsample(s.ch)));
    this.downAttn = p.down.map((s) => (s.kind === 'res' && s.attn ? new AttentionBlock(s.cout, groups) : null));
    this.mid1 = new ResBlock(p.mid.ch, p.mid.ch, p.embDim, groups);
    this.midAttn = this.config.attentionAtLowest ? new AttentionBlock(p.mid.ch, groups) : null;
    this.mid2 = new ResBlock(p.mid.ch, p.mid.ch, p.embDim, groups);
    this.up = p.up.map((s) => (s.kind === 'res' ? new ResBlock(s.cin, s.cout, p.embDim, groups) : new Upsample(s.ch)));
    this.upAttn = p.up.map((s) => (s.kind === 'res' && s.attn ? new AttentionBlock(s.cout, groups) : null));
    this.outNorm = new GroupNorm(groups, base);
    this.outConv = new Conv2d(base, this.config.inChannels, 3, { padding: 1 });
    zeroParameter(this.outConv.weight);
    zeroParameter(this.outConv.bias!);
  }

  /** The conditioning vector emb = MLP(sinusoidal(t)) + classEmb[y], [B, 4 * baseChannels]. */
  embedding(t: Tensor, y: Tensor | null = null): Tensor {
    const b = t.shape[0];
    const labels = y ?? tensor(new Int32Array(b).fill(this.config.numClasses), [b], { gpu: t.gpu });
    if (labels.dtype !== 'i32' || labels.ndim !== 1 || labels.shape[0] !== b) {
      throw new Error(`UNet: labels must be int32 [${b}] (class numClasses = ${this.config.numClasses} is the null class), got ${labels.dtype} [${labels.shape.join(', ')}]`);
    }
    const temb = timestepEmbedding(t, this.config.baseChannels, { scale: this.config.timeScale ?? DEFAULT_TIME_SCALE });
    return this.timeMlp2.forward(this.timeMlp1.forward(temb).silu()).add(this.classEmb.forward(labels));
  }

  /**
   * Velocity for images x [B, C, H, W] at times t (float32 [B], raw, in [0, T]) with labels y (int32 [B];
   * the value numClasses, or y = null, selects the null class).
   */
  forward(x: Tensor, t: Tensor, y: Tensor | null = null): Tensor {
    const { inChannels: c, imageSize: s } = this.config;
    if (x.ndim !== 4 || x.shape[1] !== c || x.shape[2] !== s || x.shape[3] !== s) {
      throw new Error(`UNet: expects x [B, ${c}, ${s}, ${s}], got [${x.shape.join(', ')}]`);
    }
    if (t.ndim !== 1 || t.shape[0] !== x.shape[0]) throw new Error(`UNet: t must have shape [${x.shape[0]}], got [${t.shape.join(', ')}]`);
    const embAct = this.embedding(t, y).silu();
    let h = this.inConv.forward(x);
    const skips: Tensor[] = [h];
    this.down.forEach((block, i) => {
      if (block instanceof ResBlock) {
        h = block.forward(h, embAct);
        const attn = this.downAttn[i];
        if (attn) h = attn.forward(h);
      } else {
        h = block.forward(h);
      }
      skips.push(h);
    });
    h = this.mid1.forward(h, embAct);
    if (this.midAttn) h = this.midAttn.forward(h);
    h = this.mid2.forward(h, embAct);
    this.up.forEach((block, i) => {
      if (block instanceof ResBlock) {
        h = block.forward(concat([h, skips.pop()!], 1), embAct);
        const attn = this.upAttn[i];
        if (attn) h = attn.forward(h);
      } else {
        h = block.forward(h);
      }
    });
    return this.outConv.forward(normSilu(this.outNorm, h));
  }
}

/** Overwrite a parameter with zeros in place (keeps its identity, so optimizers and names see it). */
function zeroParameter(p: Tensor): void {
  p.gpu.upload(p.writableBuffer, new Float32Array(p.size));
}

// ---- cost model -----------------------------------------------------------------------------------

/**
 * Forward FLOPs (multiply-add = 2) of one UNet evaluation on `batch` images: convolutions, linear
 * layers and attention matmuls exactly; GroupNorm, SiLU, adds and softmax approximated at ~10, 4, 1
 * and 5 FLOPs per element. A training step (forward + backward) costs about 3x this.
 */
export function unetFlops(cfg: UNetConfig, batch: number): number {
  const p = plan(cfg);
  const conv = (cin: number, cout: number, k: number, out: number) => 2 * cin * cout * k * k * out * out + cout * out * out;
  const norm = (ch: number, size: number) => 10 * ch * size * size;
  const act = (ch: number, size: number) => 4 * ch * size * size;
  const res = (cin: number, cout: number, size: number) =>
    norm(cin, size) + act(cin, size) + conv(cin, cout, 3, size) + 2 * p.embDim * cout + cout * size * size +
    norm(cout, size) + act(cout, size) + conv(cout, cout, 3, size) + (cin === cout ? 0 : conv(cin, cout, 1, size)) + cout * size * size;
  const attn = (ch: number, size: number) => {
    const n = size * size;
    return norm(ch, size) + conv(ch, 3 * ch, 1, size) + 2 * 2 * n * n * ch + 5 * n * n + conv(ch, ch, 1, size) + ch * n;
  };
  let f = 0;
  // conditioning: embedding MLP (the sinusoids and the class lookup are negligible)
  f += 2 * cfg.baseChannels * p.embDim + 2 * p.embDim * p.embDim + 4 * p.embDim;
  f += conv(cfg.inChannels, cfg.baseChannels, 3, cfg.imageSize);
  for (const s of p.down) {
    if (s.kind === 'res') f += res(s.cin, s.cout, s.size) + (s.attn ? attn(s.cout, s.size) : 0);
    else f += conv(s.ch, s.ch, 3, s.size / 2);
  }
  f += 2 * res(p.mid.ch, p.mid.ch, p.mid.size) + (cfg.attentionAtLowest ? attn(p.mid.ch, p.mid.size) : 0);
  for (const s of p.up) {
    if (s.kind === 'res') f += res(s.cin, s.cout, s.size) + (s.attn ? attn(s.cout, s.size) : 0);
    else f += conv(s.ch, s.ch, 3, s.size * 2);
  }
  f += norm(cfg.baseChannels, cfg.imageSize) + act(cfg.baseChannels, cfg.imageSize) + conv(cfg.baseChannels, cfg.inChannels, 3, cfg.imageSize);
  return f * batch;
}

/** A preset's UNet sized for the data: its channels, square image size and classes. */
export function unetConfigFor(preset: string, data: { channels: number; height: number; width: number; numClasses: number }): UNetConfig {
  const base = Object.hasOwn(allUnetPresets, preset) ? allUnetPresets[preset] : undefined;
  if (!base) throw new Error(`unknown preset '${preset}': use ${UNET_PRESET_NAMES.join(', ')}`);
  if (data.height !== data.width) throw new Error(`images must be square, got ${data.height}x${data.width}`);
  return { ...base, inChannels: data.channels, imageSize: data.height, numClasses: data.numClasses };
}
