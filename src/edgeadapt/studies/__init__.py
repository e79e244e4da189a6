"""Studies: recipes over the layers below (train every method of a run, evaluate, compare, sweep, transfer,
recovery, analysis). Each writes JSON results; reports are rendered by `edgeadapt.reports` when asked."""
