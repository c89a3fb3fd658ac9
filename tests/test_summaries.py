"""mnistlab.summaries: TensorBoard event files without TensorFlow, read back by TensorBoard."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mnistlab.summaries import EventWriter


def png_bytes(width=5, height=3):
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


def test_tensorboard_reads_back_scalars_text_and_images(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with EventWriter(tmp_path / "run") as w:
        for step, value in enumerate([0.5, 0.25, 0.125]):
            w.scalar("loss", value, step)
        w.text("notes", "| a | b |\n|---|---|\n| 1 | 2 |", 0)
        w.image("picture", png_bytes(), 7)
    files = list((tmp_path / "run").glob("events.out.tfevents.*"))
    assert files == [w.path]
    acc = EventAccumulator(str(tmp_path / "run"), size_guidance={"tensors": 0})
    acc.Reload()
    assert set(acc.Tags()["tensors"]) == {"loss", "notes", "picture"}
    loss = acc.Tensors("loss")
    assert [e.step for e in loss] == [0, 1, 2]
    assert [float(np.asarray(e.tensor_proto.float_val)[0]) for e in loss] == [0.5, 0.25, 0.125]
    assert acc.SummaryMetadata("loss").plugin_data.plugin_name == "scalars"
    assert acc.SummaryMetadata("notes").plugin_data.plugin_name == "text"
    assert acc.Tensors("notes")[0].tensor_proto.string_val[0].startswith(b"| a | b |")
    width, height, png = acc.Tensors("picture")[0].tensor_proto.string_val
    assert (int(width), int(height), png) == (5, 3, png_bytes())
    assert acc.Tensors("picture")[0].step == 7


def test_tensorflow_reads_the_records(tmp_path):
    # TensorFlow's reader checks each record's length and CRCs: the framing is TensorFlow's own.
    tf = pytest.importorskip("tensorflow")
    with EventWriter(tmp_path) as w:
        w.scalar("x", 2.0, 3)
    events = list(tf.compat.v1.train.summary_iterator(str(w.path)))
    assert events[0].file_version == "brain.Event:2"
    assert [(e.step, v.tag, tf.make_ndarray(v.tensor).item()) for e in events[1:] for v in e.summary.value] == \
        [(3, "x", 2.0)]


def test_not_a_png_is_refused(tmp_path):
    with EventWriter(tmp_path) as w, pytest.raises(ValueError, match="'bad': not PNG bytes"):
        w.image("bad", b"GIF89a...", 0)


def test_two_writers_in_one_folder_write_two_files(tmp_path):
    with EventWriter(tmp_path) as a, EventWriter(tmp_path) as b:
        a.scalar("x", 1, 0)
        b.scalar("x", 2, 1)
    assert a.path != b.path and len(list(tmp_path.glob("events.out.tfevents.*"))) == 2
