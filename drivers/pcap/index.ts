/**
 * pcap driver: `.pcap` files (write, read, record any device, replay into a path) and live
 * capture/injection through the optional `pcap` npm package.
 *
 * Read first: pcap-savefile(5), pcap(3PCAP), pcap-filter(7).
 * @module
 */
export { PcapWriter, PcapFormatError, parsePcap, readPcap, PCAP_MAGIC_US, PCAP_MAGIC_NS, LINKTYPE_ETHERNET, DEFAULT_SNAPLEN } from './pcap-file.js'
export type { PcapCapture, PcapRecord, PcapWriterOptions } from './pcap-file.js'
export { DeviceWrapper, RecordingDevice, recordDevice } from './record.js'
export type { RecordOptions } from './record.js'
export { replayPcap } from './replay.js'
export type { ReplayOptions, ReplayResult } from './replay.js'
export { PcapLiveDevice, openLive, loadPcapModule, missingPcapError } from './live.js'
export type { LiveOptions, PcapModule, PcapSessionLike, PcapStats } from './live.js'
