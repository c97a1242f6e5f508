// Rank 1 of a 3-rank TCP collective (built package) that joins, then dies before the first op.
import { TcpCollective } from "../../dist/src/distributed/tcp.js";

const port = Number(process.argv[2]);
await TcpCollective.connect({ rank: 1, worldSize: 3, host: "127.0.0.1", port, timeoutMs: 60_000 });
setTimeout(() => process.exit(3), 300);
