/**
 * The iperf3 client of the bench: test/support/traffic.ts's, plus `-C cubic`. Issue 3 measures
 * TCP cubic; a new namespace inherits the host's default congestion control (bbr on these
 * machines) and cannot switch to cubic itself (cubic is not in tcp_allowed_congestion_control,
 * and changing that is a host-wide setting), but a root process may choose it per socket. With
 * -R the server takes the choice from the client's test parameters. The run fails if iperf3
 * reports another algorithm.
 */
import { nsPath } from '../../test/support/fixtures.js';
import { parseIperf, type IperfJson, type IperfResult, type IperfServer } from '../../test/support/traffic.js';
import { runTracked } from './proc.js';

export const TCP_CC = 'cubic';

export interface ClientOptions {
  seconds: number;
  reverse?: boolean;
  udpBps?: number;
  intervalS?: number;
}

export async function iperfClient(ns: string, server: Pick<IperfServer, 'addr' | 'port'>, o: ClientOptions): Promise<IperfResult> {
  const args = [`--net=${nsPath(ns)}`, '/usr/bin/iperf3', '-c', server.addr, '-p', String(server.port), '-t', String(o.seconds), '-J'];
  args.push('-i', String(o.intervalS ?? 0.5), '--connect-timeout', '3000');
  if (o.reverse) args.push('-R');
  if (o.udpBps) args.push('-u', '-b', String(Math.round(o.udpBps)));
  else args.push('-C', TCP_CC);
  const r = await runTracked('/usr/bin/nsenter', args, { timeoutMs: o.seconds * 1000 + 20_000, comm: 'iperf3' });
  let json: IperfJson;
  try {
    json = JSON.parse(r.stdout) as IperfJson;
  } catch {
    throw new Error(`iperf3 client in ${ns} (exit ${r.code}) printed no JSON: ${r.stderr.trim() || r.stdout.slice(0, 200)}`);
  }
  if (json.error || r.code !== 0) throw new Error(`iperf3 client in ${ns} failed (exit ${r.code}): ${json.error ?? r.stderr.trim()}`);
  if (!o.udpBps) {
    const end = json.end as { sender_tcp_congestion?: string; receiver_tcp_congestion?: string } | undefined;
    const used = end?.sender_tcp_congestion;
    if (used !== undefined && used !== TCP_CC) throw new Error(`iperf3 sent with ${used}, not ${TCP_CC}`);
  }
  return parseIperf(json, !!o.reverse);
}
