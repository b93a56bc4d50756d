"""Rooms on one node with SIPp callers: participant features (07) and announcements, coach and
beeps (08). session.py is what both do; each scenario is its own module."""
