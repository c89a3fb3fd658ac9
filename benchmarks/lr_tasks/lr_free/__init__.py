"""Learning-rate-free optimizers for Keras 3 (issue 29): Prodigy, D-Adapt Adam, schedule-free AdamW.

Issue 29 compares the LR range test's suggestion with what people now pick
instead of a finder: an optimizer that needs no learning rate. This package
ports three of them to Keras 3, at the reference implementations' default
settings, written with `keras.ops` only so they run on jax, tensorflow and
torch, eagerly and compiled (jax.jit, tf.function with or without XLA, and
torch.compile, where the graph breaks come from Keras' torch trainer, not
from these optimizers).

References read for this port (the PyTorch packages the papers point to):

* Prodigy (Mishchenko & Defazio 2023, arXiv:2306.06101): `prodigyopt`,
  github.com/konstmish/prodigy, `prodigyopt/prodigy.py` class `Prodigy`
  (commit 3efb213, Jan 2025). Defaults: lr=1.0, betas=(0.9, 0.999),
  beta3=None (= sqrt(beta2)), eps=1e-8, weight_decay=0 (decoupled), d0=1e-6,
  d_coef=1.0, growth_rate=inf, use_bias_correction=False,
  safeguard_warmup=False, slice_p=1.
* D-Adaptation Adam (Defazio & Mishchenko 2023, arXiv:2301.07733):
  `dadaptation`, github.com/facebookresearch/dadaptation,
  `dadaptation/dadapt_adam.py` class `DAdaptAdam` (commit c984980, Jan 2025).
  Defaults: lr=1.0, betas=(0.9, 0.999), eps=1e-8, weight_decay=0 (coupled,
  i.e. L2 added to the gradient), d0=1e-6, growth_rate=inf,
  use_bias_correction=False, layer_scale=1.
* Schedule-free AdamW (Defazio et al. 2024, arXiv:2405.15682): `schedulefree`,
  github.com/facebookresearch/schedule_free,
  `schedulefree/adamw_schedulefree.py` class `AdamWScheduleFree` (commit
  70785b5). Defaults: lr=0.0025, betas=(0.9, 0.999), eps=1e-8,
  weight_decay=0, warmup_steps=0, r=0, weight_lr_power=2, inner_momentum=0.
  That version divides the second moment by its bias correction inside the
  square root (older releases multiplied the learning rate by
  sqrt(1 - beta2^t) instead); this port follows the current one.

Is there a maintained Keras 3 version? (checked when this was written)

* Schedule-free AdamW: yes, `keras.optimizers.ScheduleFreeAdamW` (added by
  keras-team/keras PR #22113, Feb 2026; present in keras 3.15). mnistlab
  allows keras>=3.8, which lacks it, and it has no way to switch the model to
  the averaged weights x for evaluation (Keras has no `optimizer.eval()`), so
  it is ported here too. At the defaults (no warmup, no weight decay) the two
  compute the same iterates up to rounding on jax (the tests check it when the
  installed keras has it). On tensorflow and torch the keras 3.15.1 built-in
  does not follow the reference: it saves `momentum.value` before updating
  the momentum in place, and on those backends that is the variable itself,
  so it recovers x from the new z instead of the old one (copying the value
  first makes it match). With warmup or weight decay they differ: Keras
  weights the average by 1/t and decays at y with AdamW's decoupled rule,
  the reference weights by lr_max^2 and adds decay * y to the normalised
  gradient; this port follows the reference.
* Prodigy and D-Adapt Adam: no. Neither keras, keras-hub nor keras-cv ships
  them; the Keras ports found (e.g. the personal repository NoteDance/optimizers)
  call TensorFlow directly, so they do not run on jax or torch.

How the global step is done. Prodigy and D-Adaptation share one step size d
across all variables, and d at step k needs sums over every variable (an inner
product and an l1 norm) before any variable may move. Keras' per-variable
`update_step` cannot express that, so these optimizers override
`_backend_update_step(grads, variables, learning_rate)`, which the base
`apply` calls once per step with all gradients (after clipping, gradient
accumulation and loss-scale handling): a first pass updates the moment
estimates and accumulates the sums, the new d is computed, a second pass
moves the variables. Every branch of the reference that depends on a value
(`d == d0`, "no gradient at all, skip the step") is written with `ops.where`,
so the same code traces under jax.jit and tf.function and runs eagerly on
torch. On tensorflow this bypasses the tf.distribute merge of the built-in
optimizers: the port is meant for one replica (no MirroredStrategy, no FSDP).

Deliberate differences from the references, none of which changes the
iterates at the defaults:

* Scalars the reference keeps as Python floats (double precision), such as d
  and the d numerator, are float32 optimizer variables here (jax runs in
  float32), so results agree with the reference to float32 rounding.
* `slice_p` (Prodigy) and `layer_scale` (D-Adapt) are not ported: their
  defaults (1) are the only values used.
* Weight decay (0 by default) follows each reference and applies to every
  variable: Keras' `exclude_from_weight_decay` does not affect it.
* Learning-rate schedules are accepted, but a learning rate of exactly 0 is
  not special-cased as in the references (which then freeze d).
* Schedule-free's `eval()`/`train()` computes x from y and z and back, which
  is exact only up to rounding. Here `eval_weights()` stores the training
  point y and `train_weights()` restores it bit for bit, unless the weights
  were changed while in eval mode, in which case y is recomputed from x as
  the reference does. The reference raises if a step is taken in eval mode;
  here that check is Python, so under a compiled `fit` it only runs while
  the step is traced: use `ScheduleFreeEval`, which restores y before
  training.

Use: `make("prodigy")`, `make("dadapt_adam")`, `make("schedulefree_adamw")`
give the optimizers at their defaults. For schedule-free, pass
`ScheduleFreeEval()` to `model.fit` so validation runs on x and the model
ends training holding x, or call `optimizer.eval_weights()` /
`optimizer.train_weights()` around your own evaluation.
"""

from __future__ import annotations

import keras

from benchmarks.lr_tasks.lr_free.d_adaptation import DAdaptAdam, Prodigy
from benchmarks.lr_tasks.lr_free.schedule_free import ScheduleFreeAdamW, ScheduleFreeEval

__all__ = ["NAMES", "make", "Prodigy", "DAdaptAdam", "ScheduleFreeAdamW", "ScheduleFreeEval"]

NAMES = ("prodigy", "dadapt_adam", "schedulefree_adamw")


def make(name: str) -> keras.optimizers.Optimizer:
    """A new optimizer `name` (one of NAMES) at its reference defaults."""
    factories = {"prodigy": Prodigy, "dadapt_adam": DAdaptAdam,
                 "schedulefree_adamw": ScheduleFreeAdamW}
    if name not in factories:
        raise ValueError(f"unknown learning-rate-free optimizer {name!r}; choose from {NAMES}")
    return factories[name]()
