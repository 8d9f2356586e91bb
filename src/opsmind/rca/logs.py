"""Log-template frequency changes: which statements a service logs more, less or newly after the onset.

A log line is reduced to a *template*, the key of the statement that wrote it (:func:`template_of`): the
``logger#line`` tag Java frameworks print (logback's ``%logger{..}#%line``, e.g. ``t.s.TravelServiceImpl#457``)
when present, else the message with its variable parts (numbers, hex ids, UUIDs, quoted strings, IPs) masked.

Per service and template, the ``n_b`` lines before the onset and the ``n_a`` lines after it are compared with
what the total log volumes of the two windows over all services imply (this absorbs the windows' lengths and a
system-wide change of traffic): if the template kept its rate, each of its ``n_a + n_b`` lines falls after the
onset with probability ``p = A / (A + B)`` (``A``, ``B``: all lines after and before). The score is the two-sided
exact binomial test of ``n_a`` turned into a standard-normal z (``|z| = Phi^-1(1 - P/2)``, capped at 40), signed:
positive when a template appears or grows (an error being logged), negative when it drops or vanishes (a code
path no longer reached, e.g. after an early return or an exception). Unlike a Wald z, the exact test gives a
template that appears 20 times out of nowhere its due weight.
A drop of an ``ERROR`` or ``WARN`` template is a recovery (the tail of an earlier incident), not evidence, and is
not scored.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.stats import binom, norm

from opsmind.rca.model import Evidence, Indicator, LogLines

__all__ = ["LEVELS", "binomial_z", "parse_log_message", "score_logs", "template_of"]

LEVELS = ("ERROR", "WARN", "INFO", "DEBUG", "TRACE")
_LEVEL_RE = re.compile(r"\b(FATAL|CRITICAL|SEVERE|ERROR|ERR|WARNING|WARN|INFO|NOTICE|DEBUG|TRACE)\b")
_LEVEL_KEY_RE = re.compile(r"\b(?:level|severity|lvl)\s*[=:]\s*\"?([A-Za-z]+)", re.IGNORECASE)
_LEVEL_MAP = {"FATAL": "ERROR", "CRITICAL": "ERROR", "SEVERE": "ERROR", "ERR": "ERROR", "WARNING": "WARN",
              "NOTICE": "INFO"}
_STATEMENT_RE = re.compile(r"(?<![\w#])((?:[A-Za-z_$][\w$]*\.)*[\w$\[\].]*[A-Za-z_$\]][\w$\]]*#\d+)\b")
_MASKS = (
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"), ""),
    (re.compile(r"^\s*\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\s*"), ""),
    (re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"), "<id>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"\b[0-9a-fA-F]*\d[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\b|\b[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\d[0-9a-fA-F]*\b"),
     "<hex>"),
    (re.compile(r"\"[^\"]*\"|'[^']*'"), "<str>"),
    (re.compile(r"[-+]?\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
)


def parse_log_message(raw: str) -> str:
    """The message of a raw log line: the ``log``/``message``/``msg`` field of a JSON line, else the line.

    >>> parse_log_message('{"log":"12:00:01.5 INFO  a.b.C#12 hello\\\\n","stream":"stdout"}')
    '12:00:01.5 INFO  a.b.C#12 hello'
    >>> parse_log_message("plain text")
    'plain text'
    """
    text = raw.strip()
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError:
            return text
        if isinstance(doc, dict):
            for key in ("log", "message", "msg", "MESSAGE"):
                value = doc.get(key)
                if isinstance(value, str):
                    inner = value.strip()
                    if inner.startswith("{") and inner != text:
                        return parse_log_message(inner)
                    sev = doc.get("severity") or doc.get("level")
                    return f"{str(sev).upper()} {inner}" if isinstance(sev, str) and not _LEVEL_RE.search(
                        inner[:40]) else inner
    return text


def template_of(message: str) -> tuple[str, str]:
    """``(level, template)`` of a log message; the level is ``ERROR``/``WARN``/``INFO``/``DEBUG``/``TRACE`` or ``""``.

    >>> template_of("16:42:22.382 INFO  t.s.TravelServiceImpl#532 TraceID: ffc8 SpanID: 439b [getRoute][Get Route]")
    ('INFO', 't.s.TravelServiceImpl#532')
    >>> template_of("ERROR o.a.c.c.C.[.[.[.[dispatcherServlet]#175 Servlet.service() threw exception")
    ('ERROR', 'o.a.c.c.C.[.[.[.[dispatcherServlet]#175')
    >>> template_of("2024-01-01T00:00:00Z WARN request 7f3a9c1e took 1234 ms from 10.0.0.7:8080")
    ('WARN', 'WARN request <hex> took <n> ms from <ip>')
    """
    head = message[:200]
    m = _LEVEL_RE.search(head) or _LEVEL_KEY_RE.search(head)
    word = m.group(1).upper() if m else ""
    level = _LEVEL_MAP.get(word, word) if word in _LEVEL_MAP or word in LEVELS else ""
    st = _STATEMENT_RE.search(head)
    if st:
        return level, st.group(1)
    text = message
    for pattern, repl in _MASKS:
        text = pattern.sub(repl, text)
    return level, text.strip()[:160]


def _mode(values: pd.Series) -> str:
    counts = values.value_counts()
    return str(counts.index[0]) if len(counts) else ""


def binomial_z(k: npt.NDArray[np.float64], n: npt.NDArray[np.float64], p: float) -> npt.NDArray[np.float64]:
    """Signed z of the two-sided exact binomial test of ``k`` successes in ``n`` trials at rate ``p``.

    >>> binomial_z(np.array([5.0, 20.0, 0.0]), np.array([10.0, 20.0, 84.0]), 0.5).round(2).tolist()
    [0.0, 4.76, -10.48]
    """
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    lower = binom.cdf(k, n, p)
    upper = binom.sf(k - 1, n, p)
    pval = np.clip(2.0 * np.minimum(lower, upper), 1e-300, 1.0)
    z = np.minimum(norm.isf(pval / 2.0), 40.0)
    z = np.where(pval >= 1.0, 0.0, z)
    out: npt.NDArray[np.float64] = np.where(k >= n * p, z, -z)
    return out


def score_logs(logs: LogLines, normal: tuple[float, float], anomalous: tuple[float, float],
               baseline: LogLines | None = None, *, top: int = 5) -> tuple[dict[str, list[Indicator]], list[str]]:
    """Per-service template indicators (strongest ``|z|`` first) and notes.

    ``normal`` and ``anomalous`` are ``(start, end]`` windows in Unix seconds; lines of ``baseline`` (a known
    fault-free period) count as normal too.

    >>> t0 = 1_700_000_000
    >>> rows = [(t0 + i, "cart", "c.CartImpl#10", "INFO") for i in range(0, 120, 2)]   # steady
    >>> rows += [(t0 + i, "cart", "c.CartImpl#20", "INFO") for i in range(0, 60, 2)]   # stops at the onset
    >>> rows += [(t0 + i, "cart", "c.CartImpl#99", "ERROR") for i in range(61, 120, 4)]  # appears after it
    >>> rows += [(t0 + i, "web", "w.Web#5", "INFO") for i in range(0, 120, 3)]
    >>> ind, _ = score_logs(LogLines.from_records(rows), (t0 - 1, t0 + 60), (t0 + 60, t0 + 120))
    >>> [(i.metric, round(i.score, 1)) for i in ind["cart"]][:2]
    [('log c.CartImpl#20', 5.4), ('log c.CartImpl#99', 4.5)]
    >>> round(ind["web"][0].score, 1) < 1.0
    True
    """
    t = logs.seconds()
    in_n = (t > normal[0]) & (t <= normal[1])
    in_a = (t > anomalous[0]) & (t <= anomalous[1])
    notes: list[str] = []
    frames = []
    for mask, side, src in ((in_n, "n", logs), (in_a, "a", logs)):
        frames.append(pd.DataFrame({"svc": src.services[mask], "tpl": src.templates[mask],
                                    "lvl": src.levels[mask], "side": side}))
    if baseline is not None and len(baseline):
        frames.append(pd.DataFrame({"svc": baseline.services, "tpl": baseline.templates, "lvl": baseline.levels,
                                    "side": "n"}))
    df = pd.concat(frames, ignore_index=True)
    n_total = int((df["side"] == "n").sum())
    a_total = int((df["side"] == "a").sum())
    out: dict[str, list[Indicator]] = defaultdict(list)
    if a_total == 0:
        notes.append("logs: no log line after the onset; log templates not scored")
        return {}, notes
    if n_total == 0:
        notes.append("logs: no log line in the normal window; log templates not scored")
        return {}, notes
    r = a_total / n_total
    counts = df.groupby(["svc", "tpl", "side"]).size().unstack("side", fill_value=0)
    modes = df.groupby(["svc", "tpl"])["lvl"].agg(_mode)
    levels = {(str(a), str(b)): str(v) for a, b, v in zip(modes.index.get_level_values(0),
                                                            modes.index.get_level_values(1), modes.tolist(),
                                                            strict=True)}
    n_b = counts["n"].to_numpy(dtype=np.float64) if "n" in counts else np.zeros(len(counts))
    n_a = counts["a"].to_numpy(dtype=np.float64) if "a" in counts else np.zeros(len(counts))
    z = binomial_z(n_a, n_a + n_b, a_total / (a_total + n_total))
    mid = anomalous[0] + 0.5 * (anomalous[1] - anomalous[0])
    for (svc, tpl), zi, nb, na in zip(counts.index, z, n_b, n_a, strict=True):
        lvl = levels.get((str(svc), str(tpl)), "")
        if lvl in ("ERROR", "WARN") and zi < 0:
            continue  # fewer errors or warnings is a recovery, not a fault
        what = "appeared" if nb == 0 else ("vanished" if na == 0 else ("more" if zi > 0 else "fewer"))
        ev = Evidence("logs", "log_template", float(r * nb), float(np.sqrt(r * nb + 1.0)), float(na), mid,
                      f"{lvl or 'log'} template {what}: {int(nb)} lines before the onset, {int(na)} after "
                      f"(expected {r * nb:.1f})")
        out[str(svc)].append(Indicator(f"log {tpl}", float(abs(zi)), ev))
    for svc in out:
        out[svc].sort(key=lambda i: -i.score)
        del out[svc][top:]
    return dict(out), notes
