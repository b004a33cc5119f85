import t from 'tap'
import { readFileSync } from 'node:fs'
import { ConfigFileError, parseConfig } from '../../bin/config/schema.js'
import { parseJsonc } from '../../bin/config/jsonc.js'

const dev = (extra = ''): string => `{ "name": "lan", "type": "memory", "address": "10.0.0.1/24"${extra} }`
const base = (proxies: string, more = ''): string => `{\n  "devices": [\n    ${dev()},\n    { "name": "wan", "type": "memory", "address": "10.0.1.1/24" }\n  ],${more}\n  "proxies": [\n    ${proxies}\n  ]\n}\n`

/** [what, config text, expected message (file:line:column: ...)] */
const BAD: [string, string, RegExp][] = [
  ['syntax: missing comma', '{ "log": "info" "devices": [] }', /^c\.jsonc:1:17: expected ',' or '}' after the value of "log", got '"'/],
  ['syntax: single quotes', "{ 'log': 1 }", /^c\.jsonc:1:3: expected a "quoted" key or '}', got '''/],
  ['syntax: single-quoted value', "{ \"log\": 'info' }", /^c\.jsonc:1:10: strings take double quotes/],
  ['syntax: unterminated comment', '{ /* x ', /^c\.jsonc:1:3: unterminated \/\* comment; close it with \*\//],
  ['syntax: trailing garbage', '{}\n}', /^c\.jsonc:2:1: unexpected '}' after the top-level value/],
  ['duplicate key', '{ "log": "info",\n  "log": "debug" }', /^c\.jsonc:2:3: duplicate key "log"/],
  ['unknown top-level key', '{ "devcies": [] }', /^c\.jsonc:1:3: config: unknown key "devcies"; did you mean "devices"\?/],
  ['no devices', '{ "log": "info" }', /^c\.jsonc:1:1: config: missing "devices" \(a list of devices/],
  ['empty devices', '{ "devices": [] }', /^c\.jsonc:1:14: devices: the list is empty/],
  ['bad log level', '{ "log": "loud", "devices": [] }', /^c\.jsonc:1:10: config\.log: expected one of "trace", "debug", "info", "warn", "error", "silent", got "loud"/],
  ['device type typo', `{ "devices": [{ "name": "lan", "type": "tpa", "address": "10.0.0.1/24" }] }`, /^c\.jsonc:1:40: devices\[0\]\.type: expected one of "tap", "memory", "pcap", got "tpa"; did you mean "tap"\?/],
  ['address without prefix', `{ "devices": [{ "name": "lan", "type": "tap", "address": "10.0.0.1" }] }`, /^c\.jsonc:1:58: devices\[0\]\.address: "10\.0\.0\.1" has no prefix length; write it like "10\.0\.0\.1\/24"/],
  ['bad address', `{ "devices": [{ "name": "lan", "type": "tap", "address": "10.0.0.300/24" }] }`, /^c\.jsonc:1:58: devices\[0\]\.address: bad IPv4 address '10\.0\.0\.300\/24'/],
  ['missing address', `{ "devices": [{ "name": "lan", "type": "tap" }] }`, /^c\.jsonc:1:15: devices\[0\]: missing "address" \(the forwarder's address on this device, like "10\.0\.0\.1\/24"\)/],
  ['duplicate device', `{ "devices": [${dev()}, ${dev()}] }`, /^c\.jsonc:1:\d+: devices\[1\]\.name: "lan" is already a device/],
  ['peer on memory', `{ "devices": [${dev(', "peer": {}')}] }`, /devices\[0\]: "peer" \(a namespace for the kernel side\) applies to tap devices only/],
  ['mtu out of range', `{ "devices": [${dev(', "mtu": 70000')}] }`, /devices\[0\]\.mtu: expected the MTU \(an integer 576\.\.65535\), got 70000/],
  ['route to unknown dev', `{ "devices": [${dev()}], "routes": [{ "cidr": "0.0.0.0/0", "dev": "wna" }] }`, /routes\[0\]\.dev: unknown device "wna"/],
  ['route without via/dev', `{ "devices": [${dev()}], "routes": [{ "cidr": "0.0.0.0/0" }] }`, /routes\[0\]: give "via" \(a gateway\) or "dev" \(a device\), or both/],
  ['path spec syntax error, exact column', base('', '\n  "paths": ["r: lan -> -> wan"],').replace('"proxies": [\n    \n  ]', '"proxies": []'), /^c\.jsonc:6:24: paths\[0\]: expected a module or device name, got '->'/],
  ['path spec: not a router', base('', '\n  "paths": ["lan -> ETH -> IP -> TCP -> ETH -> wan"],').replace('"proxies": [\n    \n  ]', '"proxies": []'), /^c\.jsonc:6:34: paths\[0\]: pathsplice run builds IP router paths from specs/],
  ['path spec: unknown device', base('', '\n  "paths": ["lan -> ETH -> IP(route) -> ETH -> wam"],').replace('"proxies": [\n    \n  ]', '"proxies": []'), /^c\.jsonc:6:48: paths\[0\]: unknown device 'wam'; did you mean "wan"\?/],
  ['proxy type typo', base('{ "type": "sock5", "port": 1080 }'), /^c\.jsonc:7:15: proxies\[0\]\.type: expected one of "null", "socks5", "http", "transparent", got "sock5"; did you mean "socks5"\?/],
  ['socks5 without rules', base('{ "type": "socks5", "port": 1080 }'), /^c\.jsonc:7:5: proxies\[0\]: missing "rules" \(SOCKS5 denies by default/],
  ['socks5 bad rule network', base('{ "type": "socks5", "port": 1080, "rules": [{ "action": "allow", "dst": "10.0.1.1/24" }] }'), /^c\.jsonc:7:77: proxies\[0\]\.rules\[0\]\.dst: '10\.0\.1\.1\/24' has host bits set; did you mean 10\.0\.1\.0\/24\?/],
  ['socks5 bad ports', base('{ "type": "socks5", "port": 1080, "rules": [{ "action": "allow", "ports": [9, 2] }] }'), /proxies\[0\]\.rules\[0\]\.ports: expected ports within 0\.\.65535 with lo <= hi, got \[9,2\]/],
  ['rule action typo', base('{ "type": "socks5", "port": 1080, "rules": [{ "action": "alow" }] }'), /proxies\[0\]\.rules\[0\]\.action: expected one of "allow", "deny", got "alow"; did you mean "allow"\?/],
  ['key of another proxy type', base('{ "type": "null", "port": 1080, "server": "10.0.1.2:80", "rules": [] }'), /^c\.jsonc:7:62: proxies\[0\]: "rules" does not apply to a null proxy \(its keys: "server"\)/],
  ['null without server', base('{ "type": "null", "port": 1080 }'), /proxies\[0\]: missing "server" \(the server, "ip:port"\)/],
  ['bad server', base('{ "type": "null", "port": 1080, "server": "10.0.1.2" }'), /proxies\[0\]\.server: expected "ip:port" like "10\.0\.1\.2:8080", got "10\.0\.1\.2"/],
  ['port taken', base('{ "type": "null", "port": 80, "server": "10.0.1.2:80" }, { "type": "null", "port": 80, "server": "10.0.1.3:80" }'), /proxies\[1\]\.port: 80 is already taken by proxy "null-0"; give each proxy its own port/],
  ['splice policy typo', base('{ "type": "null", "port": 80, "server": "10.0.1.2:80", "splice": "allways" }'), /proxies\[0\]\.splice: expected "never", "after-control", "proxy" or \{ "afterBytes": N \}, got "allways"/],
  ['afterBytes on socks5', base('{ "type": "socks5", "port": 1080, "rules": [], "splice": { "afterBytes": 10 } }'), /proxies\[0\]\.splice: \{ "afterBytes": N \} applies to "null" and "transparent" proxies/],
  ['after-control on http', base('{ "type": "http", "port": 80, "routes": [], "splice": "after-control" }'), /proxies\[0\]\.splice: an http proxy has no single control phase/],
  ['http path prefix', base('{ "type": "http", "port": 80, "routes": [{ "pathPrefix": "api", "servers": ["10.0.1.2:80"] }] }'), /proxies\[0\]\.routes\[0\]\.pathPrefix: must start with "\/", got "api"; write "\/api"/],
  ['ipfwd-shared on http', base('{ "type": "http", "port": 80, "routes": [], "mode": "ipfwd-shared" }'), /^c\.jsonc:7:57: proxies\[0\]\.mode: 'ipfwd-shared' cannot unsplice, and the http proxy unsplices after each response \(HTTP\/1\.1 keep-alive\); use 'ipfwd' or 'fwd'/],
  ['mode typo', base('{ "type": "null", "port": 80, "server": "10.0.1.2:80", "mode": "ipfwd-share" }'), /proxies\[0\]\.mode: expected one of "fwd", "ipfwd", "ipfwd-shared", got "ipfwd-share"; did you mean "ipfwd-shared"\?/],
  ['layout typo', base('{ "type": "null", "port": 80, "server": "10.0.1.2:80", "layout": "one-path" }'), /proxies\[0\]\.layout: expected one of "1-path", "2-path", got "one-path"/],
  ['transparent without intercept', base('{ "type": "transparent" }'), /^c\.jsonc:7:5: proxies\[0\]: missing "intercept" \(which connections routed through the forwarder to take/],
  ['transparent empty intercept', base('{ "type": "transparent", "intercept": [] }'), /^c\.jsonc:7:43: proxies\[0\]\.intercept: the list is empty; add a rule like/],
  ['intercept without dst', base('{ "type": "transparent", "intercept": [{ "ports": [80] }] }'), /^c\.jsonc:7:44: proxies\[0\]\.intercept\[0\]: missing "dst" \(the servers' network to intercept/],
  ['intercept host bits', base('{ "type": "transparent", "intercept": [{ "dst": "10.0.1.1/24" }] }'), /^c\.jsonc:7:53: proxies\[0\]\.intercept\[0\]\.dst: '10\.0\.1\.1\/24' has host bits set; did you mean 10\.0\.1\.0\/24\?/],
  ['intercept bad port', base('{ "type": "transparent", "intercept": [{ "dst": "10.0.1.0/24", "ports": [80, 70000] }] }'), /^c\.jsonc:7:82: proxies\[0\]\.intercept\[0\]\.ports: 70000 is not a port 1\.\.65535/],
  ['intercept ports empty', base('{ "type": "transparent", "intercept": [{ "dst": "10.0.1.0/24", "ports": [] }] }'), /proxies\[0\]\.intercept\[0\]\.ports: expected a port \(80\) or a list of ports \[80, 8080\], got an empty list/],
  ['intercept key typo', base('{ "type": "transparent", "intercept": [{ "dst": "10.0.1.0/24", "port": 80 }] }'), /^c\.jsonc:7:68: proxies\[0\]\.intercept\[0\]: unknown key "port"; did you mean "ports"\?/],
  ['intercept on a socks5 proxy', base('{ "type": "socks5", "port": 1080, "rules": [], "intercept": [] }'), /proxies\[0\]: "intercept" does not apply to a socks5 proxy/],
  ['transparent "proxy" splice', base('{ "type": "transparent", "intercept": [{ "dst": "10.0.1.0/24" }], "splice": "proxy" }'), /proxies\[0\]\.splice: a transparent proxy makes no decisions of its own/],
]

for (const [what, text, re] of BAD) {
  t.test(`bad config: ${what}`, async t => {
    let err: unknown = null
    try {
      parseConfig(text, 'c.jsonc')
    } catch (e) {
      err = e
    }
    t.type(err, ConfigFileError, 'a ConfigFileError')
    t.match((err as Error).message, re)
    t.equal((err as ConfigFileError).code, 'PS_ERR_CONFIG')
  })
}

t.test('good configs: every shipped example config validates', async t => {
  for (const f of ['socks5-memory', 'http-lb-memory', 'l4-memory', 'socks5-tap', 'transparent-memory']) {
    const file = `examples/configs/${f}.jsonc`
    const cfg = parseConfig(readFileSync(file, 'utf8'), file)
    t.ok(cfg.devices.length >= 2, `${f}: devices`)
    t.ok(cfg.proxies.length >= 1 || cfg.routers.length >= 1, `${f}: something to run`)
  }
})

t.test('a full config: defaults, policies, router path, peers', async t => {
  const cfg = parseConfig(`{
    // comments and trailing commas are fine
    "log": "debug",
    "devices": [
      { "name": "lan", "type": "tap", "address": "10.0.0.1/24", "peer": { "netns": "lan-ns", "address": "10.0.0.2/24", "routes": [{ "cidr": "10.0.1.0/24", "via": "10.0.0.1" }] } },
      { "name": "wan", "type": "tap", "ifname": "pswan", "address": "10.0.1.1/24", "mtu": 9000 },
    ],
    "routes": [{ "cidr": "0.0.0.0/0", "via": "10.0.1.254", "metric": 5 }],
    "paths": ["r1: lan -> ETH -> IP(route) -> ETH -> wan"],
    "proxies": [
      { "type": "null", "port": 80, "server": { "ip": "10.0.1.2", "port": 8080 }, "splice": { "afterBytes": 100 } },
      { "name": "s", "type": "socks5", "port": 1080, "rules": [], "users": { "u": "p" }, "hosts": { "db": "10.0.1.9" }, "splice": "never", "layout": "2-path", "mode": "ipfwd" },
      { "type": "http", "port": 8000, "routes": [{ "host": "*.example", "servers": ["10.0.1.2:80", "10.0.1.3:80"] }], "default": ["10.0.1.4:80"], "allowConnect": true, "connectRules": [{ "action": "allow", "ports": 443 }] },
      { "name": "sh", "type": "socks5", "port": 1081, "rules": [], "mode": "ipfwd-shared" },
      { "name": "tp", "type": "transparent", "intercept": [{ "dst": "10.0.1.0/24", "ports": [80, 8080], "src": "10.0.0.0/24" }, { "dst": "10.0.2.7", "ports": 22 }], "rules": [{ "action": "allow" }], "splice": { "afterBytes": 10 } },
    ],
    "tcp": { "minRtoMs": 200, "mslMs": 100 },
    "control": "/tmp/x.sock",
  }`, 'full.jsonc')
  t.equal(cfg.log, 'debug')
  t.same(cfg.devices.map(d => [d.name, d.ifname, d.mtu]), [['lan', 'lan', 1500], ['wan', 'pswan', 9000]])
  t.same(cfg.devices[0]!.peer, { netns: 'lan-ns', address: '10.0.0.2/24', routes: [{ cidr: '10.0.1.0/24', via: '10.0.0.1' }] })
  t.same(cfg.routers, [{ name: 'r1', from: 'lan', to: 'wan', spec: 'r1: lan -> ETH -> IP(route) -> ETH -> wan' }])
  t.same(cfg.proxies.map(p => [p.name, p.type, p.splice, p.layout, p.mode]), [
    ['null-0', 'null', { afterBytes: 100 }, '1-path', 'fwd'],
    ['s', 'socks5', 'never', '2-path', 'ipfwd'],
    ['http-2', 'http', 'proxy', '1-path', 'fwd'],
    ['sh', 'socks5', 'after-control', '1-path', 'ipfwd-shared'],
    ['tp', 'transparent', { afterBytes: 10 }, '1-path', 'fwd'],
  ])
  t.equal(cfg.proxies[4]!.port, null, 'a transparent proxy needs no port')
  t.same(cfg.proxies[4]!.intercept, [{ dst: '10.0.1.0/24', src: '10.0.0.0/24', ports: [80, 8080] }, { dst: '10.0.2.7', ports: [22] }])
  t.match(cfg.proxies[4]!.summary, /intercepting 10\.0\.1\.0\/24:80,8080 from 10\.0\.0\.0\/24; 10\.0\.2\.7:22, 1 rule/)
  for (const p of cfg.proxies) t.equal(typeof p.handler().name, 'string', 'handlers build')
  t.same(cfg.tcp, { minRtoMs: 200, mslMs: 100 })
  t.equal(cfg.control, '/tmp/x.sock')
})

t.test('jsonc: escapes, numbers, nesting and positions', async t => {
  const n = parseJsonc('{\n  "a": [1, -2.5e3, true, null, "x\\ty\\u0041"] /* c */\n}', 'f')
  t.equal(n.kind, 'object')
  const a = n.kind === 'object' ? n.entries.get('a')! : null
  t.same(a!.key, { line: 2, column: 3 })
  const items = a!.value.kind === 'array' ? a!.value.items : []
  t.same(items.map(i => (i.kind === 'null' ? null : 'value' in i ? i.value : i.kind)), [1, -2500, true, null, 'x\tyA'])
  t.same(items[4]!.pos, { line: 2, column: 32 })
  t.throws(() => parseJsonc('"a\\q"', 'f'), /f:1:3: bad escape '\\q'/)
  t.throws(() => parseJsonc('"abc', 'f'), /f:1:1: unterminated string/)
  t.throws(() => parseJsonc('[1 2]', 'f'), /f:1:4: expected ',' or '\]' in the list, got '2'/)
  t.throws(() => parseJsonc('', 'f'), /f:1:1: expected a value .* got the end of the file/)
})
