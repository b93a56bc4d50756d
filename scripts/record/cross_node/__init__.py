"""Two nodes and a room that spans them (10): scenarios.py is the recording; session.py, node.py,
caller.py, config.py, report.py and sniffer.py what it stands on; joins.py and kills.py two of its
parts."""
