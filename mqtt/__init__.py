"""luxtel's own asyncio MQTT 3.1.1/5 client: the packet codec (with runs of PUBLISH split in C),
the connection, and acknowledgements released in arrival order. A shared part: it knows nothing
of readings or of what the messages carry."""
