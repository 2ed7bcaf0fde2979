"""Transports: thin layers that turn a wire protocol into calls on the runtime's Encoder.

One subpackage per protocol, each a servicer or API and its conversions: encoder_v1/ and oip/
(gRPC), openai/ (HTTP). Beside them what they share: the serving state, the gate, the status
table (status.py; its gRPC side and the gRPC interceptors in rpc.py and interceptors.py),
security, the option names, metrics, configuration, and the app that runs them all.
"""
