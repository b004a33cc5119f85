/**
 * The MSOCKS client library for Node (`pathsplice/msocks`): {@link MobileSocket}, a
 * `Duplex` that reaches a server through an MSOCKS proxy and moves between local
 * addresses and interfaces without the application noticing (Maltz and Bhagwat, §III-C),
 * the wire format it shares with the proxy (see docs/msocks.md), and the proxy's
 * identifier registry {@link MsocksService} (the resplice itself is `Resplicer` in
 * `pathsplice/paths`).
 * @module
 */
export { MobileSocket } from './mobile-socket.js'
export type { MobileBind, MobileConnectTarget, MobileEndpoint, MobileSocketError, MobileSocketOptions, MobileTransport, ReconnectInfo, ReconnectOptions } from './mobile-socket.js'
export { WriteRing } from './ring.js'
export {
  MSOCKS_CMD_BIND, MSOCKS_CMD_CONNECT, MSOCKS_CMD_RECONNECT, MSOCKS_CONNECT_REPLY_LENGTH, MSOCKS_ID_LENGTH, MSOCKS_RECONNECT_LENGTH,
  MSOCKS_RECONNECT_REPLY_LENGTH, MsocksRep, buildReconnect, buildReconnectReply, parseConnectReply, parseReconnect,
  parseReconnectReply, resplicePoints,
} from '../../stages/proxy/handlers/msocks.js'
export type { MsocksConnectReply, MsocksReconnect, MsocksReconnectReply, MsocksRepCode, ResplicePoints, RespliceState } from '../../stages/proxy/handlers/msocks.js'
// The proxy side's registry (give it to socks5Proxy({ msocks }); paths' Resplicer moves sessions).
export { MsocksService } from '../../stages/proxy/handlers/msocks.js'
export type { MsocksLogEvent, MsocksMover, MsocksServiceOptions, MsocksStats } from '../../stages/proxy/handlers/msocks.js'
export type { Socks5Parse, Socks5ReplyCode } from '../../stages/proxy/handlers/socks5.js'
export { Socks5Rep } from '../../stages/proxy/handlers/socks5.js'
