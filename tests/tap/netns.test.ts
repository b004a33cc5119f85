// The namespace helpers other kernel-peer tests build on: unique names, commands inside,
// long-running children killed on delete, and cleanup of namespaces a dead run left behind.
import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { Netns, moveLink, netAdminUnavailable, run } from '../../drivers/tap/index.js'

const unavailable = netAdminUnavailable()
if (unavailable !== null) t.plan(0, `netns tests skipped: ${unavailable}`)
else await main()

async function main(): Promise<void> {
  t.test('create, run inside, adopt a link, delete', async t => {
    const ns = await Netns.create('pn')
    t.teardown(() => ns.delete())
    t.match(ns.name, new RegExp(`^pn-${process.pid}-\\d+$`))
    t.ok(existsSync(`/run/netns/${ns.name}`))
    t.match(await ns.ip('link', 'show', 'lo'), /UP/, 'loopback up')
    // A dummy-free link to move: a veth pair whose both ends end up inside the namespace.
    const peer = `${ns.name}v`
    await run('ip', ['link', 'add', ns.name, 'type', 'veth', 'peer', 'name', peer])
    await moveLink(peer, ns)
    await ns.adopt(ns.name, { addr: '10.202.0.1/24', mtu: 1400 })
    await ns.ip('link', 'set', peer, 'up')
    const shown = await ns.ip('-j', 'addr', 'show', ns.name)
    t.match(shown, /10\.202\.0\.1/)
    t.match(shown, /"mtu":1400/)
    t.equal((await ns.run('cat', ['/proc/net/dev'])).stdout.includes(peer), true, 'commands run inside')
    const child = ns.spawn('sleep', ['30'])
    const exited = new Promise<string | null>(res => child.once('exit', (_c, sig) => res(sig)))
    await ns.delete()
    await ns.delete()
    t.equal(await exited, 'SIGKILL', 'children killed on delete')
    t.notOk(ns.alive)
    t.notOk(existsSync(`/run/netns/${ns.name}`), 'namespace gone')
    t.throws(() => ns.run('true'), { message: /was deleted/ })
    t.equal(spawnSync('ip', ['link', 'show', ns.name]).status === 0, false, 'the veth went with it')
  })

  t.test('deleteSync, and namespaces left by a dead process are swept', async t => {
    const ns = await Netns.create('pn')
    ns.deleteSync()
    ns.deleteSync()
    t.notOk(existsSync(`/run/netns/${ns.name}`))
    // A namespace named after a pid that no longer exists.
    const dead = spawnSync('true').pid!
    const stale = `pn-${dead}-0`
    execFileSync('ip', ['netns', 'add', stale])
    t.teardown(() => spawnSync('ip', ['netns', 'del', stale]))
    const fresh = await Netns.create('pn') // sweeps on create
    t.teardown(() => fresh.delete())
    t.notOk(existsSync(`/run/netns/${stale}`), 'stale namespace deleted')
  })

  t.test('an exiting process deletes the namespaces it still holds', async t => {
    const mod = new URL('../../drivers/tap/netns.ts', import.meta.url).href
    const loader = new URL('../../node_modules/@tapjs/typescript/dist/esm/import.mjs', import.meta.url).href
    const code = `const { Netns } = await import(${JSON.stringify(mod)}); const ns = await Netns.create('pn'); console.log(ns.name)`
    const out = execFileSync(process.execPath, ['--import', loader, '--input-type=module', '-e', code], { encoding: 'utf8', timeout: 30_000 })
    const name = out.trim().split('\n').pop()!
    t.match(name, /^pn-\d+-0$/)
    t.notOk(existsSync(`/run/netns/${name}`), `${name} deleted at exit`)
  })
}
