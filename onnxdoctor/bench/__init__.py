"""Bench: timing backends against each other, with statistics that say when a difference is real."""
