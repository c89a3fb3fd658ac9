"""The model's and optimizer's state, snapshot before the range test and restored after it."""

from __future__ import annotations

import numpy as np

from mnistlab.models.random_state import set_torch_generator_state, torch_generator_state


class preserved_state:
    """Context manager: snapshot every variable the test can change; restore them on exit.

    That is the model's variables (trainable, non-trainable such as BatchNorm
    statistics, and the seed generators' state), the optimizer's variables
    (iteration count, learning rate, moments) and the metrics' variables; on
    torch also torch's global random generator, from which Keras draws the masks
    of a Dropout layer without a seed there (not from the layer's seed generator).
    An unbuilt model is built first (called on one batch in inference mode)
    and an unbuilt optimizer built on the model's trainable variables, the
    way `fit` would build them, so that what is restored is their first state.
    Restoring happens even when the test fails or is interrupted.
    """

    def __init__(self, model, optimizer, x_batch):
        self.model, self.optimizer, self.x_batch = model, optimizer, x_batch

    def __enter__(self):
        if not self.model.built:
            self.model(self.x_batch)
        if not self.optimizer.built:
            self.optimizer.build(self.model.trainable_variables)
        seen, self.saved = set(), []
        for v in [*self.model.variables, *self.optimizer.variables, *self.model.metrics_variables]:
            if id(v) not in seen:
                seen.add(id(v))
                self.saved.append((v, np.array(v.numpy(), copy=True)))
        self.rng = torch_generator_state()
        return self

    def restore(self):
        """Put every saved variable (and, on torch, the global generator) back as it was."""
        for v, value in self.saved:
            v.assign(value)
        set_torch_generator_state(self.rng)

    def __exit__(self, *exc):
        self.restore()
        known = {id(v) for v, _ in self.saved}
        if any(id(v) not in known for v in self.model.metrics_variables):
            self.model.reset_metrics()  # metrics first built by the test start from zero
        return False
