// The parts of the TAP driver that need no root: error texts, drop reasons, option checks,
// and the namespace helpers' naming and command running.
import t from 'tap'
import { tapOpenError, txDropReason, TAP_DROP_REASONS, loadNative, uniqueName, run, CommandError, haveTool, sweepStaleNamespaces } from '../../../drivers/tap/index.js'
import { DeviceError } from '../../../core/errors.js'

t.test('open errors start with the errno name and say what to do', async t => {
  const table: [string, RegExp][] = [
    ['EPERM', /^EPERM: opening \/dev\/net\/tun needs CAP_NET_ADMIN/],
    ['EACCES', /^EACCES: .*run as root/],
    ['EBUSY', /^EBUSY: device busy/],
    ['ENODEV', /^ENODEV: no such device/],
    ['ENOENT', /^ENOENT: \/dev\/net\/tun does not exist/],
    ['EINVAL', /^EINVAL: .*not a TAP device/],
    ['EMFILE', /^EMFILE: TAP 'tap9': too many/],
  ]
  for (const [code, re] of table) {
    const cause = { code, message: code === 'EMFILE' ? 'too many open files' : 'kernel text' }
    const e = tapOpenError(cause, 'tap9')
    t.type(e, DeviceError)
    t.equal(e.code, 'PS_ERR_DEVICE')
    t.match(e.message, re, code)
    t.equal(e.cause, cause)
  }
  t.match(tapOpenError('weird', 'x').message, /^EUNKNOWN: TAP 'x': weird/)
})

t.test('send statuses map to drop reasons', async t => {
  t.equal(txDropReason(-1), 'gso-unsupported')
  t.equal(txDropReason(-2), 'bad-range')
  t.equal(txDropReason(5), 'tx-link-down')
  t.equal(txDropReason(100), 'tx-link-down')
  t.equal(txDropReason(9), 'closed')
  t.equal(txDropReason(22), 'tx-error')
  for (const r of ['gso-unsupported', 'bad-range', 'tx-link-down', 'closed', 'tx-error']) t.ok((TAP_DROP_REASONS as readonly string[]).includes(r), r)
})

t.test('the native addon loads and exposes its functions', async t => {
  const n = loadNative()
  t.equal(loadNative(), n, 'loaded once')
  for (const f of ['open', 'recv', 'send', 'setRef', 'info', 'close'] as const) t.type(n[f], 'function', f)
  t.throws(() => n.info({} as never), { message: /not a TAP handle/ })
  t.throws(() => n.open('x', 0, 0, new Uint8Array(2), 4, 2048, () => undefined), { message: /mac must be a 6-byte/ })
})

t.test('unique names fit an interface name', async t => {
  const a = uniqueName('ps')
  const b = uniqueName('ps')
  t.not(a, b)
  t.match(a, new RegExp(`^ps-${process.pid}-\\d+$`))
  t.ok(a.length <= 15)
  t.throws(() => uniqueName('a-very-long-prefix'), RangeError)
})

t.test('run: output, failures, timeouts, input', async t => {
  t.equal((await run('sh', ['-c', 'echo out; echo err >&2'])).stdout, 'out\n')
  await t.rejects(run('sh', ['-c', 'echo bad >&2; exit 3']), { name: 'CommandError', code: 'PS_ERR_COMMAND', message: /failed \(3\): bad/ })
  await t.rejects(run('sleep', ['5'], { timeoutMs: 100 }), { message: /timed out after 100 ms/ })
  t.equal((await run('cat', [], { input: 'piped' })).stdout, 'piped')
  try {
    await run('sh', ['-c', 'echo partial; exit 1'])
  } catch (err) {
    t.type(err, CommandError)
    t.equal((err as CommandError).stdout, 'partial\n')
  }
  t.equal(haveTool('sh'), true)
  t.equal(haveTool('no-such-tool-pathsplice'), false)
  t.type(sweepStaleNamespaces('zz-none'), Array)
})
