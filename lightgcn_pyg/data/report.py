r"""What loading an interaction set did: counts of cleaned-up input and a text summary."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Union


@dataclass
class LoadReport:
    r"""Counts of what a reader did to the raw input, so nothing is dropped silently.

    Every field is a non-negative count; a freshly constructed report is all zeros.

    Args:
        empty_lines (int): Blank or whitespace-only lines skipped (text format, all files).
            (default: :obj:`0`)
        duplicates_dropped (int): Repeated :obj:`(user, item)` pairs removed; each pair is kept
            once per split, so degrees count it once. (default: :obj:`0`)
        users_without_items (int): Lines holding a user id but no item id (text format).
            (default: :obj:`0`)
        test_only_users (int): Users with test interactions but no training interaction.
            They still get an index. (default: :obj:`0`)
        test_only_items (int): Items with test interactions but no training interaction.
            They still get an index. (default: :obj:`0`)
        overlap (int): :obj:`(user, item)` pairs of the test (or a given validation) split that
            are also training pairs. (default: :obj:`0`)
        overlap_dropped (int): Overlapping pairs removed from the test / validation split
            (:obj:`drop_overlap=True`), else :obj:`0`. (default: :obj:`0`)
        unused_users (int): User indices without any interaction in any split, e.g. ids that a
            text file never mentions below its largest id. (default: :obj:`0`)
        unused_items (int): Item indices without any interaction in any split.
            (default: :obj:`0`)
        rating_filtered (int): Rows dropped because their rating was below :obj:`min_rating`.
            (default: :obj:`0`)
        val_carved (int): Training pairs moved to the validation split by
            :meth:`InteractionSet.with_validation`. (default: :obj:`0`)
    """

    empty_lines: int = 0
    duplicates_dropped: int = 0
    users_without_items: int = 0
    test_only_users: int = 0
    test_only_items: int = 0
    overlap: int = 0
    overlap_dropped: int = 0
    unused_users: int = 0
    unused_items: int = 0
    rating_filtered: int = 0
    val_carved: int = 0

    def to_dict(self) -> Dict[str, int]:
        r"""Returns the counts as a plain :obj:`dict` (JSON and :obj:`torch.save` safe)."""
        return {field.name: int(getattr(self, field.name)) for field in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, counts: Mapping[str, Any]) -> LoadReport:
        r"""Builds a report from :meth:`to_dict` output; unknown keys or bad values raise
        :class:`ValueError`."""
        if not isinstance(counts, Mapping):
            raise ValueError(
                f"'report' must be a dict of counts in 'LoadReport' (got {type(counts).__name__})"
            )
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(counts) - names)
        if unknown:
            raise ValueError(
                f"Unknown keys {unknown} in 'LoadReport' (expected some of {sorted(names)})"
            )
        for key, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"'{key}' must be a non-negative integer in 'LoadReport' (got {value!r})"
                )
        return cls(**counts)

    def messages(self) -> List[str]:
        r"""Returns one human-readable sentence per non-zero count."""
        out = []
        if self.empty_lines:
            out.append(f"skipped {self.empty_lines} empty line(s)")
        if self.users_without_items:
            out.append(f"{self.users_without_items} line(s) hold a user id without items")
        if self.duplicates_dropped:
            out.append(f"dropped {self.duplicates_dropped} duplicate (user, item) pair(s)")
        if self.rating_filtered:
            out.append(f"dropped {self.rating_filtered} row(s) below the minimum rating")
        if self.test_only_users or self.test_only_items:
            out.append(
                f"{self.test_only_users} user(s) and {self.test_only_items} item(s) appear "
                "only in the test split"
            )
        if self.overlap:
            fate = "dropped from" if self.overlap_dropped else "kept in"
            out.append(f"{self.overlap} test pair(s) also in train were {fate} the test split")
        if self.unused_users or self.unused_items:
            out.append(
                f"{self.unused_users} user index(es) and {self.unused_items} item index(es) "
                "have no interaction"
            )
        if self.val_carved:
            out.append(f"moved {self.val_carved} training pair(s) to the validation split")
        return out


#: Order and labels of the text form of :meth:`InteractionSet.summary`.
SUMMARY_LABELS = (
    ("name", "dataset"),
    ("num_users", "users"),
    ("num_items", "items"),
    ("num_train", "train interactions"),
    ("num_val", "validation interactions"),
    ("num_test", "test interactions"),
    ("density", "density"),
    ("duplicates_dropped", "duplicates dropped"),
    ("empty_lines", "empty lines"),
    ("users_without_items", "users without items"),
    ("test_only_users", "test-only users"),
    ("test_only_items", "test-only items"),
    ("overlap", "train/test overlap"),
    ("overlap_dropped", "overlap dropped from test"),
    ("unused_users", "users without interactions"),
    ("unused_items", "items without interactions"),
    ("rating_filtered", "rows below min rating"),
    ("val_carved", "moved to validation"),
    ("fingerprint", "fingerprint"),
)


def format_summary(summary: Mapping[str, Union[int, float, str, None]]) -> str:
    r"""Formats :meth:`InteractionSet.summary` as aligned ``label: value`` lines."""
    width = max(len(label) for _, label in SUMMARY_LABELS)
    lines = []
    for key, label in SUMMARY_LABELS:
        if key not in summary or summary[key] is None:
            continue
        value = summary[key]
        if isinstance(value, float):
            text = f"{value:.6g}"
        elif isinstance(value, int):
            text = f"{value:,}"
        else:
            text = str(value)
        lines.append(f"{label + ':':<{width + 1}} {text}")
    return "\n".join(lines)
