"""Dial-out on one node (09): scenarios.py is the recording, session.py how a dialled leg is
shown, uas.py the called parties, dialstrings.py scenario G."""
