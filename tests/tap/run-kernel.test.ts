// `pathsplice run` with a TAP config, for real: the CLI (a child process) creates two TAP
// devices and a namespace for each one's kernel side, runs a SOCKS5 firewall between
// them, and curl in the client namespace fetches a file from an HTTP server in the server
// namespace through it (spliced after the SOCKS reply). Then `stats` over the control
// socket, SIGTERM, and a check that the namespaces, links and socket are gone.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { haveTool, netAdminUnavailable, run } from '../../drivers/tap/index.js'
import { main } from '../../bin/pathsplice.js'
import type { ForwarderStats } from '../../bin/config/runtime.js'
import { NODE_HTTP_SERVER, supervise } from '../helpers/proxy-kernel.js'

const LOADER = './node_modules/@tapjs/typescript/dist/esm/import.mjs'
const why = netAdminUnavailable() ?? (haveTool('curl') ? null : 'curl is not installed')

t.test('pathsplice run: SOCKS5 firewall on TAP between two namespaces, curl through it, clean SIGTERM', { skip: why ?? false }, async t => {
  const dir = t.testdir({})
  const tag = (process.pid % 100000).toString(36)
  const cdev = `rc${tag}`
  const sdev = `rs${tag}`
  const sock = join(tmpdir(), `ps-run-${process.pid}.sock`)
  const cfg = join(dir, 'fw.jsonc')
  writeFileSync(cfg, JSON.stringify({
    log: 'info',
    devices: [
      { name: 'c', type: 'tap', ifname: cdev, address: '10.79.1.1/24', peer: { netns: `psrc${tag}`, address: '10.79.1.2/24' } },
      { name: 's', type: 'tap', ifname: sdev, address: '10.79.2.1/24', peer: { netns: `psrs${tag}`, address: '10.79.2.2/24' } },
    ],
    proxies: [{ name: 'socks', type: 'socks5', port: 1080, splice: 'after-control', rules: [{ action: 'allow', dst: '10.79.2.0/24', ports: 8080 }] }],
    tcp: { minRtoMs: 200, mslMs: 100 },
  }))
  const blob = randomBytes(4 << 20)
  writeFileSync(join(dir, 'blob'), blob)

  const child: ChildProcess = spawn(process.execPath, ['--import', LOADER, 'bin/pathsplice.ts', 'run', cfg, '--control', sock], { stdio: ['ignore', 'pipe', 'pipe'] })
  const runner = supervise(child, 'pathsplice run', 90_000)
  const children: ChildProcess[] = [child]
  t.teardown(async () => {
    for (const c of children) c.kill('SIGKILL')
    // Should the CLI have died, remove what it made (names carry its pid).
    for (const ns of (await run('ip', ['netns', 'list']).catch(() => ({ stdout: '' }))).stdout.split('\n')) {
      const name = ns.split(' ')[0] ?? ''
      if (name.startsWith(`psrc${tag}-`) || name.startsWith(`psrs${tag}-`)) await run('ip', ['netns', 'del', name]).catch(() => undefined)
    }
  })
  await runner.ready(/"ready":true/, 30_000)
  const ready = JSON.parse(runner.stdout.split('\n').find(l => l.includes('"ready"'))!) as { namespaces: Record<string, string> }
  const cns = ready.namespaces['c']!
  const sns = ready.namespaces['s']!
  t.match(cns, new RegExp(`^psrc${tag}-\\d+-\\d+$`), 'client namespace created')
  t.match(sns, new RegExp(`^psrs${tag}-\\d+-\\d+$`), 'server namespace created')

  const http = spawn('ip', ['netns', 'exec', sns, process.execPath, '-e', NODE_HTTP_SERVER, '10.79.2.2', '8080', dir], { stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(http)
  await supervise(http, 'http server', 60_000).ready(/listening/)

  const out = join(dir, 'got')
  const curl = await run('ip', ['netns', 'exec', cns, 'curl', '-sS', '--max-time', '30', '--socks5', '10.79.1.1:1080', '-o', out, '-w', '%{http_code} %{size_download}', 'http://10.79.2.2:8080/blob'], { timeoutMs: 40_000 })
  t.equal(curl.stdout, `200 ${blob.length}`, 'curl got the whole file')
  t.equal(createHash('sha256').update(readFileSync(out)).digest('hex'), createHash('sha256').update(blob).digest('hex'), 'digest matches')
  const denied = await run('ip', ['netns', 'exec', cns, 'curl', '-sS', '--max-time', '10', '--socks5', '10.79.1.1:1080', 'http://10.79.2.2:22/'], { timeoutMs: 20_000 }).then(() => 'succeeded', (e: Error) => e.message)
  t.match(denied, /failed \(97\): curl: \(97\) Can't complete SOCKS5 connection to 10\.79\.2\.2\. \(2\)/, 'a port the rules do not allow is refused: REP X\'02\' (not allowed by ruleset)')

  const c = { out: [] as string[], log: console.log }
  console.log = (...a: unknown[]) => void c.out.push(a.join(' '))
  const code = await main(['node', 'pathsplice', 'stats', '--control', sock, '--json']).finally(() => { console.log = c.log })
  t.equal(code, 0)
  const stats = JSON.parse(c.out.join('')) as ForwarderStats
  const p = stats.proxies[0]!
  t.ok(p.accepted >= 2, `accepted ${p.accepted}`)
  t.ok(p.splices >= 1, `spliced ${p.splices} time(s)`)
  t.ok(p.spliceMsMean !== null && p.spliceMsMean >= 0, `splice latency ${p.spliceMsMean} ms`)
  t.ok(stats.devices.every(d => d.rxFrames > 0 && d.txFrames > 0), 'both devices carried frames')

  child.kill('SIGTERM')
  await runner.done
  t.match(runner.stderr, /shutting down why=SIGTERM/)
  t.match(runner.stderr, /stopped/)
  const list = (await run('ip', ['netns', 'list'])).stdout
  t.notMatch(list, new RegExp(`${cns}|${sns}`), 'namespaces removed')
  const links = (await run('ip', ['-o', 'link', 'show'])).stdout
  t.notMatch(links, new RegExp(`${cdev}|${sdev}`), 'TAP devices removed')
  t.notOk(existsSync(sock), 'control socket removed')
})
