"""The diagnosis thresholds, each with why it is where it is (one table, so they can be read and tuned together)."""
from __future__ import annotations

MIN_TREND_STEPS = 50  # the batch loss is noisy: fewer steps than this cannot show a trend
FLAT_DROP = 0.10  # "flat": the loss fell by less than 10% from the first steps to the latest (healthy runs fall 40-90%)
FLAT_ALARM = 0.02  # under 2% it is not slow, it is not learning at all
LOW_LOSS = 0.5  # a loss below half of ln C has already learned something: flat there is converged, not stuck
RATIO_MOVING = 3e-4  # with updates above this (the low edge of the plots' 1e-3 band) a flat loss is not the LR's fault
RISE_FACTOR = 1.5  # the latest loss 1.5x the initial one: training is making the model worse, the LR is too high
EXPLODE_FACTOR = 10.0  # any stretch of the loss 10x the initial one: it blew up, even if it came back
PLATEAU_BAND = 0.05  # a plateau: the loss stays within 5% of its initial value
PLATEAU_MIN_STEPS = 30  # ... for at least this many steps and 3 chunks (shorter is the normal start)
PLATEAU_DROP = 0.25  # then falls 25% below it within half the plateau's length: the classic bad-init curve
WARMUP_LR = 0.5  # a plateau while the LR is below half its peak is warmup doing its job, not bad init
MIN_EPOCHS_GAP = 2  # one epoch is one point: a gap needs at least two to be "growing"
OVERFIT_GAP = 0.15  # train accuracy 15 points above validation is more than augmentation noise explains
GAP_GROWTH = 0.05  # ... and 5 points wider than early on
VAL_RISE = 0.10  # or the validation loss 10% above its minimum while the train loss still falls
OVERFIT_ALARM_RISE = 0.20  # validation loss 20% above its best: the model is getting worse on new data
UNDERFIT_GAP = 0.05  # train and validation within 5 points: the model is not memorizing
UNDERFIT_LEVEL = 0.5  # "low" accuracy: below halfway from chance (1/C) to 100% on the TRAINING set, which
# every model of this lab's sizes can fit (spirals ~99%, 5k-image CIFAR-10 convnet ~70-90% train)
STILL_IMPROVING = 0.02  # the train loss fell >2% over the last two epochs: training longer still pays
UPDATE_TARGET = 1e-3  # the lectures' rule of thumb for ||dW|| / ||W|| per step
UPDATE_HIGH = 3e-2  # 30x above 1e-3: each step rewrites 3% of the weights (healthy Adam/SGD runs here: 1e-3 to 1e-2)
UPDATE_LOW = 3e-5  # 30x below: a thousand steps move the weights by 3%, far too slow for these short runs
UPDATE_ALARM = 30.0  # a further 30x beyond either bound is an alarm
RAISE_MIN, RAISE_MAX = 10.0, 1e4  # a too-low LR is raised 10x at least (less is noise) and 1e4x at most (a ratio
# read off nearly frozen weights says "much more", not exactly how much)
RAISE_NO_PROBES = 100.0  # without an update ratio: a flat loss needs a step about 100x larger
RECENT = 5  # snapshots in the "recent window" (at probe.every=25: the last 125 steps)
DEAD_WARN = 0.5  # half of a layer's ReLUs silent on the whole probe batch: its capacity is halved
DEAD_ALARM = 0.9  # 90%: the layer passes almost nothing; gradients through it are mostly zero
SAT_INIT = 0.2  # at step 0, a fifth of sigmoid/tanh values at their limits (Xavier init: under 6%)
SAT_LATE = 0.6  # later in training confident nets saturate (a trained tanh spirals MLP: 40-60%)
CONFIDENT = 0.8  # ... so late saturation is judged only while train accuracy is below 80% of the way to 100%
COLLAPSE_RATIO = 0.1  # a deeper layer's activation std under a tenth of the first's, shrinking layer by layer to it
COLLAPSE_ALARM = 1e-3  # under a thousandth the deep layers carry no signal at all
MIN_COLLAPSE_LAYERS = 3  # "across depth" needs at least three activation layers
NARROW_SPREAD = 0.05  # a sigmoid/tanh layer whose values have a std under 5% of the activation's range gives
# (nearly) the same output for every input: Xavier-initialized layers spread 9-30% (10-layer sigmoid: 9%, tanh: 23%),
# an N(0, 0.01) sigmoid stack 0.3-1.5%
VANISH_RATIO = 1e-3  # the first layer's weight gradient under a thousandth of the last layer's: healthy nets
# (He/Xavier, batch norm, convnets, resnets) measured 0.2 to 8 on this lab's models, so 1e-3 is 200x below them
VANISH_ALARM = 1e-6  # under a millionth the first layers cannot move at all within a run of this lab's length
VANISH_SHRINKING = 0.75  # ... and shrinking layer by layer toward the input (3 of 4 steps): not one odd layer
SYMMETRY_TOL = 1e-6  # units whose outputs agree to 1e-6 (relative) are the same unit

# the fixes' standard values: the lectures' and this lab's usual first settings
WARMUP_EPOCHS = 1.0  # one epoch of linear warmup tames the first large steps
GRAD_CLIP = 1.0  # a gradient norm of 1 caps a step without touching normal ones
WEIGHT_DECAY = 5e-4  # the CIFAR recipes' L2 weight decay
DROPOUT = 0.3
CROP_PAD, CUTOUT, MIXUP = 4, 8, 0.2  # CIFAR's standard pad-crop, a quarter-side cutout, a mild mixup
PATIENCE = 3  # epochs without a better validation score before early stopping
PROBE_EVERY = 25  # probe snapshots every 25 steps: cheap, and enough points for the recent window
VAL_SIZE = 1000  # a validation split large enough for a gap of a few points to mean something

PLOT_CURVES, PLOT_STATS, PLOT_GRADS = "learning_curves", "activation_stats", "gradients"
PLOT_FIRST = "activations_first"  # the step-0 histograms: the lectures' picture of a bad init
CHANCE_BAND = 0.1  # a finished run whose best accuracy is within a tenth of the way from chance to 100% learned
# (almost) nothing: 19% on CIFAR-10, 55% on a 2-class set; a default CIFAR run passes 19% within its first epoch
