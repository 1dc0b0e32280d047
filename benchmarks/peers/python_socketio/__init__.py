"""The python-socketio peer: ``python -m benchmarks.peers.python_socketio.server``."""
