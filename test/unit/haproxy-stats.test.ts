/**
 * host/haproxy/stats.ts, our stats socket client: `show stat` as captured from haproxy 2.6
 * parsed by column name into typed rows (empty numeric columns null, counters 0), a header in
 * another order and a quoted free-text cell with commas changing nothing, a row of an unknown
 * type left out; `show info`'s Pid;
 * over a unix socket in a temporary directory: exactly the one fixed command is written, a
 * reply over the size bound and a silent peer are errors (never a partial result), a bad
 * socket path is refused before any connection.
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ValidationError } from '../../contracts/schema.ts';
import {
  parseInfo,
  parseStat,
  showInfo,
  showStat,
  statsCommand,
} from '../../host/haproxy/stats.ts';
import { tempDir } from '../helpers/env.ts';

/** `show stat` of haproxy 2.6.12: a frontend, a server failing its TCP check, a backend. */
const SHOW_STAT = `${[
  '# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,',
  'f,FRONTEND,,,0,0,9985,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,0,,,,0,0,0,0,0,0,,0,0,0,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,0,0,0,0,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,',
  'b,s1,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,1,1,2,2,,1,3,1,,0,,2,0,,0,L4CON,,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,Connection refused,,0,0,0,0,,,,Layer4 connection problem,,2,3,0,,,,127.0.0.1:81,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,',
  'b,BACKEND,0,0,0,0,999,0,0,0,0,0,,0,0,0,0,DOWN,0,0,0,,1,2,2,,1,3,0,,0,,1,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,http,roundrobin,,,,,,,0,0,0,0,0,,,0,0,0,0,0,,,,,0,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,',
].join('\n')}\n\n`;

const SERVER_ROW = {
  pxname: 'b',
  svname: 's1',
  type: 'server',
  scur: 0,
  smax: 0,
  stot: 0,
  bin: 0,
  bout: 0,
  ereq: null,
  econ: 0,
  eresp: 0,
  status: 'DOWN',
  weight: 1,
  lastchg: 2,
  chkfail: 1,
  check_status: 'L4CON',
  check_code: null,
};

/** A unix socket peer answering every connection with `reply(command)`, recording commands. */
function peer(path: string, reply: (command: string, socket: Socket) => void) {
  const seen: string[] = [];
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    let got = '';
    socket.on('data', (d) => {
      got += d.toString();
    });
    socket.on('end', () => {
      seen.push(got);
      reply(got, socket);
    });
    socket.on('error', () => socket.destroy());
  });
  return new Promise<{ seen: string[]; close(): void }>((resolve) =>
    server.listen(path, () => resolve({ seen, close: () => server.close() })),
  );
}

describe('haproxy stats socket client', () => {
  const dir = tempDir('kumo-haproxy-stats-');
  after(() => dir.cleanup());

  test('show stat parses by column name into typed rows', () => {
    const rows = parseStat(SHOW_STAT);
    assert.deepEqual(
      rows.map((r) => [r.pxname, r.svname, r.type, r.status]),
      [
        ['f', 'FRONTEND', 'frontend', 'OPEN'],
        ['b', 's1', 'server', 'DOWN'],
        ['b', 'BACKEND', 'backend', 'DOWN'],
      ],
    );
    assert.deepEqual(rows[1], SERVER_ROW);
    assert.equal(rows[0]?.weight, null);
    assert.equal(rows[0]?.check_status, '');
  });

  test('another column order and a quoted cell with commas give the same row', () => {
    const csv = [
      '# check_desc,svname,pxname,stot,status,type,check_status,weight,bin,bout,scur,smax,lastchg,chkfail,econ,eresp',
      '"Layer4, connection ""problem""",s1,b,0,DOWN,2,L4CON,1,0,0,0,0,2,1,0,0',
    ].join('\n');
    assert.deepEqual(parseStat(csv), [SERVER_ROW]);
    assert.deepEqual(parseStat(`${csv.replace(',2,L4CON', ',9,L4CON')}\n`), []);
    assert.throws(() => parseStat('pxname,svname\n'), /no CSV header/);
  });

  test('show info gives the pid', () => {
    const info = parseInfo('Name: HAProxy\nPid: 4242\nUptime: 0d 0h00m02s\n');
    assert.deepEqual(info, { Name: 'HAProxy', Pid: '4242', Uptime: '0d 0h00m02s' });
  });

  test('over a unix socket: one fixed command per connection, typed replies', async () => {
    const path = join(dir.path, 'ok.sock');
    const p = await peer(path, (cmd, s) =>
      s.end(cmd === 'show stat\n' ? SHOW_STAT : 'Name: HAProxy\nPid: 4242\n\n'),
    );
    try {
      assert.equal((await showStat(path)).length, 3);
      assert.equal((await showInfo(path)).pid, 4242);
      assert.deepEqual(p.seen, ['show stat\n', 'show info\n']);
    } finally {
      p.close();
    }
  });

  test('an oversized reply or a silent peer is an error, never a partial result', async () => {
    const big = join(dir.path, 'big.sock');
    const b = await peer(big, (_c, s) => s.end('x'.repeat(64 * 1024)));
    const silent = join(dir.path, 'silent.sock');
    const q = await peer(silent, () => undefined);
    try {
      await assert.rejects(statsCommand(big, 'show stat', { maxBytes: 1024 }), /over 1024 bytes/);
      await assert.rejects(showStat(silent, { timeoutMs: 200 }), /no reply in 200 ms/);
      await assert.rejects(showInfo(join(dir.path, 'absent.sock')), /ENOENT/);
    } finally {
      b.close();
      q.close();
    }
  });

  test('a bad socket path is refused before connecting', async () => {
    for (const bad of ['relative.sock', '/tmp/a b', '/tmp/../etc/x', '/tmp/a\n'])
      await assert.rejects(
        showStat(bad),
        (e: unknown) => e instanceof ValidationError && e.field === 'socket',
      );
  });
});
