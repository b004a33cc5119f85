import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { parseIPv4 } from '../../core/bytes.js'
import { PcapWriter, readPcap } from '../../drivers/pcap/index.js'
import { buildArpRequest } from '../../stages/arp/packet.js'
import { main } from '../../bin/pathsplice.js'
import type { ForwarderStats } from '../../bin/config/runtime.js'
import { captureConsole } from '../helpers/console-capture.js'

const LOADER = './node_modules/@tapjs/typescript/dist/esm/import.mjs'


async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const c = captureConsole()
  try {
    const code = await main(['node', 'pathsplice', ...args])
    return { code, out: c.out.join('\n'), err: c.err.join('\n') }
  } finally {
    c.restore()
  }
}

t.test('run --check, paths <config>, and a bad config exit code', async t => {
  const ok = await cli('run', '--check', 'examples/configs/l4-memory.jsonc')
  t.equal(ok.code, 0)
  t.match(ok.out, /l4-memory\.jsonc: ok, 2 device\(s\), 1 proxy, 1 router path\(s\)/)
  const p = await cli('paths', 'examples/configs/l4-memory.jsonc')
  t.equal(p.code, 0)
  t.match(p.out, /modules \(layer: name/)
  t.match(p.out, /router: \[lan\] -> eth -> router -> eth -> \[wan\]/)
  t.match(p.out, /spliced: \[dev\] -> eth -> ip -> fwd -> ip -> eth -> \[dev\]/)
  const dir = t.testdir({ 'bad.jsonc': '{ "devices": [{ "name": "lan", "type": "memory", "address": "10.0.0.1/24", "mut": 9000 }] }' })
  const bad = await cli('run', join(dir, 'bad.jsonc'))
  t.equal(bad.code, 2)
  t.match(bad.err, /bad\.jsonc:1:76: devices\[0\]: unknown key "mut"; did you mean "mtu"\?/)
  const missing = await cli('run', '/nonexistent.jsonc')
  t.equal(missing.code, 2)
  t.match(missing.err, /cannot read config file '\/nonexistent\.jsonc': ENOENT/)
  const noArgs = await cli('paths')
  t.equal(noArgs.code, 2)
  t.match(noArgs.err, /give a config file or --control <socket>/)
  const noCtl = await cli('stats', '--control', join(dir, 'nobody.sock'))
  t.equal(noCtl.code, 1, 'an unreachable control socket is a run-time failure')
  t.match(noCtl.err, /cannot reach the control socket .*nobody\.sock: ENOENT/)
  const longSock = await cli('run', 'examples/configs/l4-memory.jsonc', '--control', `/tmp/${'x'.repeat(120)}.sock`)
  t.equal(longSock.code, 2)
  t.match(longSock.err, /control socket path is 130 bytes long; Unix sockets allow at most 107/)
  const noLimit = await cli('record', '--control', 'x', '--device', 'lan', '-o', 'x.pcap')
  t.equal(noLimit.code, 2)
  t.match(noLimit.err, /give --frames N or --seconds S/)
})

t.test('run with a control socket: stats, paths, record and replay; SIGTERM stops it cleanly', async t => {
  const dir = t.testdir({})
  // A short path: Unix socket paths are limited to 107 bytes.
  const sock = join(tmpdir(), `ps-ctl-${process.pid}.sock`)
  const child = spawn(process.execPath, ['--import', LOADER, 'bin/pathsplice.ts', 'run', 'examples/configs/l4-memory.jsonc', '--control', sock, '--log-level', 'debug'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const exited = new Promise<number | null>(res => child.once('exit', code => res(code)))
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  t.teardown(() => { clearTimeout(killer); child.kill('SIGKILL') })
  const deadline = Date.now() + 30_000
  while (!out.includes('"ready":true') && Date.now() < deadline && child.exitCode === null) await new Promise(r => setTimeout(r, 50))
  t.match(out, /\{"ready":true,"devices":\["lan","wan"\],"proxies":\["l4"\],"namespaces":\{\},"control":"\/tmp\/ps-ctl-\d+\.sock"\}/, 'ready line on stdout')
  t.match(err, /info  proxy l4 \(null\) listening port=5000/, 'logs on stderr')

  const stats = await cli('stats', '--control', sock, '--json')
  t.equal(stats.code, 0, stats.err)
  const s = JSON.parse(stats.out) as ForwarderStats
  t.same(s.proxies.map(p => [p.name, p.port, p.accepted, p.spliced, p.unspliced]), [['l4', 5000, 0, 0, 0]])
  t.same(s.devices.map(d => d.name), ['lan', 'wan'])
  t.same(s.paths.find(p => p.name === 'router')?.stages, ['eth#1', 'router#1', 'eth#2'], 'per-path counters include the router path')
  const table = await cli('stats', '--control', sock)
  t.match(table.out, /\| l4 \| null \| 5000 \| 0 \|/)
  t.match(table.out, /drops by reason:/)
  t.match(table.out, /\| router \| eth#1 -> router#1 -> eth#2 \| 0 \/ 0 \| 0 \/ 0 \|/)

  const paths = await cli('paths', '--control', sock)
  t.equal(paths.code, 0)
  t.match(paths.out, /host forwarder/)
  t.match(paths.out, /interface lan 10\.0\.0\.1\/24/)
  t.match(paths.out, /router: \[lan\] -> eth#1\(0800\) -> router#1 -> eth#2\(0800\) -> \[wan\]/)
  t.match(paths.out, /l4: null on port 5000, 1-path, splice after 1000 bytes to fwd; 0 session\(s\)/)

  // Three ARP requests for the forwarder's lan address, replayed as if lan received them:
  // the forwarder answers each, and a recording of lan holds requests and replies.
  const arpIn = join(dir, 'arp.pcap')
  const w = new PcapWriter(arpIn)
  for (let i = 0; i < 3; i++) {
    const m = buildArpRequest(Uint8Array.of(2, 0, 0, 0, 9, 9), parseIPv4('10.0.0.9'), parseIPv4('10.0.0.1'))
    w.writeMsg(m)
    m.free()
  }
  w.close()
  const recFile = join(dir, 'lan.pcap')
  const recording = cli('record', '--control', sock, '--device', 'lan', '-o', recFile, '--frames', '6', '--seconds', '20')
  await new Promise(r => setTimeout(r, 300))
  const rep = await cli('replay', arpIn, '--control', sock, '--device', 'lan')
  t.equal(rep.code, 0, rep.err)
  t.match(rep.out, /3 frame\(s\), 180 bytes into lan/)
  const rec = await recording
  t.equal(rec.code, 0, rec.err)
  t.match(rec.out, /6 frame\(s\) from lan/)
  const cap = readPcap(recFile)
  t.equal(cap.records.length, 6)
  const ops = cap.records.map(r => (r.data[20]! << 8) | r.data[21]!)
  t.same(ops.sort(), [1, 1, 1, 2, 2, 2], 'three requests in, three replies out')
  const after = JSON.parse((await cli('stats', '--control', sock, '--json')).out) as ForwarderStats
  t.equal(after.devices[0]!.txFrames - s.devices[0]!.txFrames, 3, 'three replies sent on lan')
  const badDev = await cli('replay', arpIn, '--control', sock, '--device', 'lna')
  t.equal(badDev.code, 2)
  t.match(badDev.err, /no device 'lna'; devices: lan, wan/)

  child.kill('SIGTERM')
  const code = await exited
  t.equal(code, 0, 'exit 0 after SIGTERM')
  t.match(err, /shutting down why=SIGTERM/)
  t.match(err, /stopped/)
  t.notOk(existsSync(sock), 'control socket removed')
})
