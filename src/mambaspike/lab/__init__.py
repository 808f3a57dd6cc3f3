"""The paper-reproduction lab: compare models, ablate, sweep, tabulate over seeds."""
