// The aedes MQTT broker (MQTT 3.1.1, in-memory persistence) for luxtel's interop tests, run by
// servers/aedes.py: `node broker.js HOST PORT`. Logs one line per connection event to stdout,
// which servers/aedes.py sends to its log file.
import net from 'node:net'
import { Aedes } from 'aedes'

const [host, portText] = process.argv.slice(2)
const port = Number(portText)
if (!host || !Number.isInteger(port)) {
  console.error('usage: node broker.js HOST PORT')
  process.exit(2)
}

const stamp = () => new Date().toISOString()
const broker = await Aedes.createBroker()
broker.on('client', (client) => console.log(stamp(), 'client connected', client.id))
broker.on('clientDisconnect', (client) => console.log(stamp(), 'client disconnected', client.id))
broker.on('clientError', (client, error) => console.log(stamp(), 'client error', client.id, error.message))
broker.on('connectionError', (client, error) => console.log(stamp(), 'connection error', client.id, error.message))

const server = net.createServer(broker.handle)
server.listen(port, host, () => console.log(stamp(), 'aedes', 'listening on', `${host}:${port}`))

const stop = () => {
  server.close()
  broker.close(() => process.exit(0))
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
