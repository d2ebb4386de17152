// The WebSocket echo of bench/ws_peers.sh: Node's ws (from the npm
// registry; NODE_PATH says where bench/ws_peers.sh installed it).
//   node echo_node.js PORT
const { WebSocketServer } = require("ws");
const wss = new WebSocketServer({ host: "127.0.0.1", port: Number(process.argv[2]),
  perMessageDeflate: false, maxPayload: 1 << 20 });
wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
});
