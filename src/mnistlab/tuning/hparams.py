"""TensorBoard's HParams dashboard for a search, written without TensorFlow.

Keras Tuner writes HParams data only on the TensorFlow backend (through
`tf.summary`); this writes the same protocol buffers (TensorBoard's own, from
`tensorboard.plugins.hparams`) with `mnistlab.summaries.EventWriter`, on any
backend:

    RUN/trials/                       the experiment: each searched value's domain, the metrics
    RUN/trials/<id>/tensorboard/      a session per trial: its values, its best validation
                                      accuracy, its end; beside the trial's own train/ and
                                      validation/ learning curves

    tensorboard --logdir RUN/trials
"""

from __future__ import annotations

import time

from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from google.protobuf import struct_pb2

from mnistlab.summaries import EventWriter

# (group, tag, display name): group is the sub-run of the trial's tensorboard/ folder.
METRICS = (("", "tune/val_accuracy", "best val accuracy"),
           ("", "tune/learning_rate", "learning rate (found, with lr auto)"),
           ("validation", "epoch_accuracy", "val accuracy (last epoch)"),
           ("validation", "epoch_loss", "val loss (last epoch)"),
           ("train", "epoch_accuracy", "train accuracy (last epoch)"),
           ("train", "epoch_loss", "train loss (last epoch)"))
STATUS = {"COMPLETED": api_pb2.STATUS_SUCCESS, "FAILED": api_pb2.STATUS_FAILURE,
          "INVALID": api_pb2.STATUS_FAILURE, "RUNNING": api_pb2.STATUS_RUNNING}


def _summary(tag: str, data: plugin_data_pb2.HParamsPluginData) -> summary_pb2.Summary:
    summary = summary_pb2.Summary()
    summary.value.add(tag=tag, metadata=metadata.create_summary_metadata(data), tensor=metadata.NULL_TENSOR)
    return summary


def _value(v) -> struct_pb2.Value:
    if isinstance(v, bool):
        return struct_pb2.Value(bool_value=v)
    if isinstance(v, (int, float)):
        return struct_pb2.Value(number_value=float(v))
    return struct_pb2.Value(string_value=str(v) if not isinstance(v, list) else "-".join(map(str, v)))


def _info(name: str, entry: dict) -> api_pb2.HParamInfo:
    info = api_pb2.HParamInfo(name=name, display_name=name)
    values = entry.get("choices", [entry["fixed"]] if "fixed" in entry else None)
    if values is None:
        info.type = api_pb2.DATA_TYPE_FLOAT64
        info.domain_interval.min_value = float(entry["min"])
        info.domain_interval.max_value = float(entry["max"])
        return info
    first = values[0]
    info.type = (api_pb2.DATA_TYPE_BOOL if isinstance(first, bool) else api_pb2.DATA_TYPE_FLOAT64
                 if isinstance(first, (int, float)) else api_pb2.DATA_TYPE_STRING)
    if all(type(v) is type(first) for v in values):  # "auto" beside numbers: no discrete domain
        info.domain_discrete.extend(["-".join(map(str, v)) if isinstance(v, list) else v for v in values])
    else:
        info.type = api_pb2.DATA_TYPE_STRING
    return info


def write_experiment(logdir, space: dict) -> None:
    """The experiment summary: what is searched and which metrics to show."""
    experiment = api_pb2.Experiment(
        time_created_secs=time.time(),
        hparam_infos=[_info(name, entry) for name, entry in space.items()],
        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(group=g, tag=t), display_name=d)
                      for g, t, d in METRICS],
    )
    with EventWriter(logdir, replace=True) as w:
        w.summary(_summary(metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(
            experiment=experiment, version=metadata.PLUGIN_DATA_VERSION)), step=0)


def write_session(logdir, trial_id: str, values: dict, val_accuracy, status: str = "COMPLETED",
                  started: float | None = None, learning_rate: float | None = None) -> None:
    """One trial's session: its values, its best validation accuracy, the learning rate it
    trained at (the range test's suggestion when lr is "auto"), its status."""
    start = plugin_data_pb2.SessionStartInfo(group_name=trial_id, start_time_secs=started or time.time())
    for name, v in values.items():
        start.hparams[name].CopyFrom(_value(v))
    end = plugin_data_pb2.SessionEndInfo(status=STATUS.get(status, api_pb2.STATUS_UNKNOWN), end_time_secs=time.time())
    with EventWriter(logdir, replace=True) as w:
        w.summary(_summary(metadata.SESSION_START_INFO_TAG, plugin_data_pb2.HParamsPluginData(
            session_start_info=start, version=metadata.PLUGIN_DATA_VERSION)), step=0)
        if val_accuracy is not None:
            w.scalar("tune/val_accuracy", val_accuracy, step=0)
        if learning_rate is not None:
            w.scalar("tune/learning_rate", learning_rate, step=0)
        w.summary(_summary(metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(
            session_end_info=end, version=metadata.PLUGIN_DATA_VERSION)), step=0)
