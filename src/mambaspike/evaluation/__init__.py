"""Evaluation: inference and metrics, activity and energy observers, robustness, the run report."""
