"""Reports of reward-model runs, used by ``rmreg train`` and the generalization benchmark: mean ± std over seeds
and accuracy tables (:mod:`.tables`), paired differences between objectives with t-intervals and a verdict
(:mod:`.paired`), the verdict lines that end ``rmreg train`` (:mod:`.verdicts`), and the training-curves figure
(:mod:`.plots`)."""

from rmreg.reporting.paired import (
    PairedDifference,
    paired_difference,
    paired_differences,
    t_quantile,
    t_two_sided_mass,
)
from rmreg.reporting.plots import BRADLEY_TERRY_TERM, headless_pyplot, plot_curves
from rmreg.reporting.tables import accuracy_table, summarize
from rmreg.reporting.verdicts import accuracy_lines, best_of_n_lines, comparisons

__all__ = [
    "BRADLEY_TERRY_TERM",
    "PairedDifference",
    "accuracy_lines",
    "accuracy_table",
    "best_of_n_lines",
    "comparisons",
    "headless_pyplot",
    "paired_difference",
    "paired_differences",
    "plot_curves",
    "summarize",
    "t_quantile",
    "t_two_sided_mass",
]
