"""The run ledger: every run, gate and bench result, and what changed between them.

store: the SQLite file and reading it into pandas; rows: the one row builder; flips: verdict
changes between comparable runs. The names below are the package's interface.
"""
from harness.service.ledger.flips import FILTERS, LIKE, Flip, find_flips, gate_flips, last_green, select
from harness.service.ledger.rows import (GREEN_OUTCOMES, build_row, max_delta_per_key, new_run_id, outcome_of,
                                         row_from_result, selected_delta)
from harness.service.ledger.store import (COLUMNS, JSON_COLUMNS, LEDGER_NAME, Ledger, LedgerError, empty_frame,
                                          ledger_path, record)

#: ``ledger.flips(df)``: the package's name for :func:`find_flips` (the module is ledger.flips too).
flips = find_flips

__all__ = ["FILTERS", "LIKE", "Flip", "flips", "find_flips", "gate_flips", "last_green", "select",
           "GREEN_OUTCOMES", "build_row", "max_delta_per_key", "new_run_id", "outcome_of", "row_from_result", "selected_delta", "COLUMNS",
           "JSON_COLUMNS", "LEDGER_NAME", "Ledger", "LedgerError", "empty_frame", "ledger_path", "record"]
