"""Evaluating rules: pure functions of (rules, state, time, observations) and what they need
(the inventory, the sun, inhibitions)."""
