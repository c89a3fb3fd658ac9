"""TensorBoard event files written without TensorFlow.

Keras' TensorBoard callback and `tf.summary` need TensorFlow on every Keras
backend, so a JAX run imported all of TensorFlow to write a few numbers per
epoch (several seconds on 2 cores), and the callback's first write inside
`fit` was slow too (BENCHMARKS.md, "What made it fast": no TensorFlow in JAX
runs, TensorBoard files written without it, and its log).
TensorBoard's own package holds everything needed to write the same files:
the protocol buffers, the summary builders of its plugins and the record
framing. `EventWriter` uses those, and only those.

    with EventWriter("runs/x/tensorboard/train") as w:
        w.scalar("epoch_loss", 0.31, step=0)
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import time
from pathlib import Path

# TensorBoard's own pieces, none of which imports TensorFlow. (This module is imported
# only when something is written, so they cost nothing at start-up.)
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.image import metadata as image_metadata
from tensorboard.plugins.scalar.summary_v2 import scalar_pb
from tensorboard.plugins.text.summary_v2 import text_pb
from tensorboard.summary.writer.record_writer import RecordWriter
from tensorboard.util import tensor_util

_uid = itertools.count()


class EventWriter:
    """Appends summaries to a new event file in `logdir` (created if missing).

    The file is named and framed as `tf.summary.create_file_writer` names and
    frames its files, so TensorBoard, `tf.compat.v1.train.summary_iterator` and
    TensorBoard's `EventAccumulator` read it. Scalars, text and images use the
    tensor form (and plugin metadata) that `tf.summary` v2 writes.

    Args:
        logdir: the folder of one TensorBoard run (e.g. `tensorboard/train`).
        replace: first remove the folder's earlier event files, so that it holds
            this run only (TensorBoard would otherwise merge them).
    """

    def __init__(self, logdir, replace: bool = False):
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        if replace:
            for old in self.logdir.glob("events.out.tfevents.*"):
                old.unlink()
        name = (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
                f"{os.getpid()}.{next(_uid)}.v2")
        self.path = self.logdir / name
        self._records = RecordWriter(open(self.path, "wb"))
        self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

    def _write(self, event) -> None:
        self._records.write(event.SerializeToString())

    def summary(self, summary, step: int) -> None:
        """Write a `Summary` protocol buffer at `step`."""
        self._write(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

    def scalar(self, tag: str, value, step: int) -> None:
        self.summary(scalar_pb(tag, float(value)), step)

    def text(self, tag: str, text: str, step: int) -> None:
        """Text (markdown, tables included) for TensorBoard's Text tab."""
        self.summary(text_pb(tag, text), step)

    def image(self, tag: str, png: bytes, step: int) -> None:
        """A PNG image, as its bytes, for TensorBoard's Images tab."""
        if png[:8] != b"\x89PNG\r\n\x1a\n":
            raise ValueError(f"image {tag!r}: not PNG bytes")
        width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk comes first
        tensor = tensor_util.make_tensor_proto([str(width).encode(), str(height).encode(), png])
        summary = summary_pb2.Summary()
        summary.value.add(tag=tag, tensor=tensor,
                          metadata=image_metadata.create_summary_metadata(display_name=None, description=None))
        self.summary(summary, step)

    def keras_model(self, model, tag: str = "keras", step: int = 0) -> bool:
        """The model's configuration, which TensorBoard's Graphs tab draws as a
        conceptual graph (what Keras' callback writes). False if it is not JSON."""
        try:
            config = model.to_json()
        except Exception:  # as Keras' callback: a model that cannot be drawn is not an error
            return False
        summary = summary_pb2.Summary()
        meta = summary_pb2.SummaryMetadata()
        meta.plugin_data.plugin_name = "graph_keras_model"
        meta.plugin_data.content = b"1"
        summary.value.add(tag=tag, metadata=meta, tensor=tensor_util.make_tensor_proto(config.encode()))
        self.summary(summary, step)
        return True

    def flush(self) -> None:
        self._records.flush()

    def close(self) -> None:
        if not self._records.closed:
            self._records.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
