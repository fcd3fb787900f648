"""The MQTT client's errors.

MqttError
├── MqttConnectError             refused by the broker for a reason retrying will not fix
└── MqttProtocolError            (`mqtt.codec`) the peer broke the protocol: drop the connection
"""


class MqttError(Exception):
    """The broker connection failed."""


class MqttConnectError(MqttError):
    """The broker refused the connection for a reason retrying will not fix."""
