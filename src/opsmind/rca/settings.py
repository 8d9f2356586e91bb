"""The settings of root-cause analysis: one set for every system (no per-dataset tuning)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["RcaSettings"]


class RcaSettings(BaseModel):
    """How :func:`opsmind.rca.analyze` finds the onset, splits normal and anomalous data, and scores.

    One set of settings serves every system. An hour of history is the usual dashboard baseline; the first three
    minutes after the onset are where the cause shows before its effects spread (a deviation that starts
    minutes later is more likely propagation or unrelated); a deviation must hold for two samples so that
    single-sample blips do not rank; 4 robust standard deviations is a conventional outlier line. How the
    window length and the other choices were compared on the benchmark is recorded in docs/benchmarks.md and
    the RCA notes of the benchmark command.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    baseline_s: float = Field(3600.0, gt=0, description="Length of the normal window before the onset (seconds).")
    window_s: float = Field(180.0, gt=0, description="Length of the anomalous window after the onset (seconds).")
    search_s: float = Field(180.0, ge=0, description="The onset is searched within this many seconds of --at.")
    onset_z: float = Field(4.0, gt=0, description="Robust z an SLI must exceed, for `sustain` samples, at the onset.")
    log_onset: bool = Field(False, description="When the SLIs show no change, take the onset from the change point "
                            "of the log-template stream (robust to a wrong --at, but noisier than a right one).")
    event_width_s: float = Field(60.0, gt=0, description="Log-stream onset: events counted this long before and after "
                                 "each candidate split (seconds).")
    event_step_s: float = Field(10.0, gt=0, description="Log-stream onset: spacing of the candidate splits (seconds).")
    event_ratio: float = Field(2.0, ge=1, description="Log-stream onset: the best split's divergence must be this "
                               "many times the median split's.")
    sustain: int = Field(2, ge=1, description="A deviation counts only if it holds this many samples (k-th largest).")
    rel_floor: float = Field(0.05, ge=0, description="Scale floor as a fraction of the normal median's magnitude.")
    tail: float = Field(0.1, ge=0, lt=0.5, description="Spread is also at least the tail..1-tail quantile range "
                        "over its Gaussian width, so bursty metrics are not scaled by an IQR of 0 (0 = IQR only).")
    max_z: float = Field(1e4, gt=0, description="Cap of a robust z (a flat normal window makes scales tiny).")
    min_normal: int = Field(3, ge=2, description="Fewest normal samples a metric needs to be scored.")
    clean_baseline: bool = Field(True, description="Leave samples where an SLI was disturbed out of the normal "
                                 "window (the tails of earlier incidents), when at least half remain.")
    sli_to_entry: bool = Field(True, description="Count SLI deviations as indicators of the entry service(s).")
    propagation: bool = Field(True, description="Down-weight deviations explained by a neighbour on the call graph.")
    share_node_metrics: bool = Field(True, description="Divide node-level deviations among the services on a node.")
    off_path_last: bool = Field(True, description="With a call graph, rank services on no call path (they cannot "
                                "reach the SLIs through calls) after those on one.")
    client_latency_weight: float = Field(
        0.0, ge=0, le=1, description="Weight of a service's client-side latency for the service itself (its "
        "callees' latency, already attributed to them when per-edge latencies are known).")
    use_traces: bool = Field(True, description="Fuse trace latency deviations when spans are given.")
    trace_min_samples: int = Field(20, ge=1, description="Spans an operation or call edge needs in each window "
                                   "before its trace latency is compared.")
    use_logs: bool = Field(True, description="Fuse log-template frequency changes when log lines are given.")
    top_indicators: int = Field(5, ge=1, description="Indicators kept per cause.")
