// swift-format-ignore-file
// (The golden frames are aligned byte columns with a comment per field: not reformatted.)
// Golden frames, written out field by field.
//
// The bytes — and above all the checksums — come from the Python script at the end of this file
// (struct packing and its own RFC 1071 sum), run once and pasted here, so the expected values do
// not come from FTVMWire itself. Addresses: client 10.77.0.1 at 02:00:0a:4d:00:01, guest
// 10.77.0.2 at 52:54:00:12:34:56 (the project's test network).

enum Golden {
    /// Client SYN, Linux option layout: MSS 1460, SACK-permitted, timestamps, NOP, wscale 7.
    static let syn: [UInt8] = [
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56,                             // Ethernet destination 52:54:00:12:34:56
        0x02, 0x00, 0x0a, 0x4d, 0x00, 0x01,                             // Ethernet source 02:00:0a:4d:00:01
        0x08, 0x00,                                                     // EtherType IPv4
        0x45,                                                           // version 4, IHL 5 (20 bytes)
        0x00,                                                           // DSCP 0, ECN 0
        0x00, 0x3c,                                                     // total length 60
        0x1c, 0x46,                                                     // identification 0x1c46
        0x40, 0x00,                                                     // flags DF, fragment offset 0
        0x40,                                                           // TTL 64
        0x06,                                                           // protocol 6 (TCP)
        0x09, 0xda,                                                     // header checksum 0x09da (Python)
        0x0a, 0x4d, 0x00, 0x01,                                         // source 10.77.0.1
        0x0a, 0x4d, 0x00, 0x02,                                         // destination 10.77.0.2
        0x9c, 0x40,                                                     // source port 40000
        0x00, 0x50,                                                     // destination port 80
        0xce, 0x0a, 0x6a, 0x14,                                         // sequence number 3456789012
        0x00, 0x00, 0x00, 0x00,                                         // acknowledgment number 0
        0xa0,                                                           // data offset 10 (40 bytes)
        0x02,                                                           // flags SYN
        0xfa, 0xf0,                                                     // window 64240
        0x8f, 0x52,                                                     // checksum 0x8f52 (Python)
        0x00, 0x00,                                                     // urgent pointer 0
        0x02, 0x04, 0x05, 0xb4,                                         // option: MSS 1460
        0x04, 0x02,                                                     // option: SACK permitted
        0x08, 0x0a, 0x07, 0x5b, 0xcd, 0x15, 0x00, 0x00, 0x00, 0x00,     // option: timestamps TSval 123456789 TSecr 0
        0x01,                                                           // option: NOP
        0x03, 0x03, 0x07,                                               // option: window scale 7
    ]

    /// Client data, no options, 4-byte payload; 58 bytes padded to 60 with junk.
    static let dataWithPadding: [UInt8] = [
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56,                             // Ethernet destination 52:54:00:12:34:56
        0x02, 0x00, 0x0a, 0x4d, 0x00, 0x01,                             // Ethernet source 02:00:0a:4d:00:01
        0x08, 0x00,                                                     // EtherType IPv4
        0x45,                                                           // version 4, IHL 5 (20 bytes)
        0x00,                                                           // DSCP 0, ECN 0
        0x00, 0x2c,                                                     // total length 44
        0x1c, 0x47,                                                     // identification 0x1c47
        0x40, 0x00,                                                     // flags DF, fragment offset 0
        0x40,                                                           // TTL 64
        0x06,                                                           // protocol 6 (TCP)
        0x09, 0xe9,                                                     // header checksum 0x09e9 (Python)
        0x0a, 0x4d, 0x00, 0x01,                                         // source 10.77.0.1
        0x0a, 0x4d, 0x00, 0x02,                                         // destination 10.77.0.2
        0x9c, 0x40,                                                     // source port 40000
        0x00, 0x50,                                                     // destination port 80
        0xce, 0x0a, 0x6a, 0x15,                                         // sequence number 3456789013
        0x77, 0x35, 0x94, 0x01,                                         // acknowledgment number 2000000001
        0x50,                                                           // data offset 5 (20 bytes)
        0x18,                                                           // flags PSH|ACK
        0x01, 0xf6,                                                     // window 502
        0x3c, 0xd9,                                                     // checksum 0x3cd9 (Python)
        0x00, 0x00,                                                     // urgent pointer 0
        0x6f, 0x6b, 0x0d, 0x0a,                                         // payload 'ok\r\n'
        0xee, 0xee,                                                     // Ethernet padding (not part of the IP packet)
    ]

    /// Server response with timestamps (NOP NOP TS), 19-byte payload.
    static let serverData: [UInt8] = [
        0x02, 0x00, 0x0a, 0x4d, 0x00, 0x01,                             // Ethernet destination 02:00:0a:4d:00:01
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56,                             // Ethernet source 52:54:00:12:34:56
        0x08, 0x00,                                                     // EtherType IPv4
        0x45,                                                           // version 4, IHL 5 (20 bytes)
        0x00,                                                           // DSCP 0, ECN 0
        0x00, 0x47,                                                     // total length 71
        0x7a, 0x10,                                                     // identification 0x7a10
        0x40, 0x00,                                                     // flags DF, fragment offset 0
        0x40,                                                           // TTL 64
        0x06,                                                           // protocol 6 (TCP)
        0xac, 0x04,                                                     // header checksum 0xac04 (Python)
        0x0a, 0x4d, 0x00, 0x02,                                         // source 10.77.0.2
        0x0a, 0x4d, 0x00, 0x01,                                         // destination 10.77.0.1
        0x00, 0x50,                                                     // source port 80
        0x9c, 0x40,                                                     // destination port 40000
        0x77, 0x35, 0x94, 0x01,                                         // sequence number 2000000001
        0xce, 0x0a, 0x6a, 0x19,                                         // acknowledgment number 3456789017
        0x80,                                                           // data offset 8 (32 bytes)
        0x18,                                                           // flags PSH|ACK
        0x01, 0xfd,                                                     // window 509
        0x5f, 0x16,                                                     // checksum 0x5f16 (Python)
        0x00, 0x00,                                                     // urgent pointer 0
        0x01,                                                           // option: NOP
        0x01,                                                           // option: NOP
        0x08, 0x0a, 0x00, 0x01, 0x82, 0xb8, 0x07, 0x5b, 0xcd, 0x20,     // option: timestamps TSval 99000 TSecr 123456800
        0x48, 0x54, 0x54, 0x50, 0x2f, 0x31, 0x2e, 0x30, 0x20, 0x32, 0x30, 0x30,// payload 'HTTP/1.0 200 OK\r\n\r\n'
        0x20, 0x4f, 0x4b, 0x0d, 0x0a, 0x0d, 0x0a,                       
    ]

    /// Client ACK with timestamps and 2 SACK blocks (data offset 13).
    static let ackWithTwoSACKBlocks: [UInt8] = [
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56,                             // Ethernet destination 52:54:00:12:34:56
        0x02, 0x00, 0x0a, 0x4d, 0x00, 0x01,                             // Ethernet source 02:00:0a:4d:00:01
        0x08, 0x00,                                                     // EtherType IPv4
        0x45,                                                           // version 4, IHL 5 (20 bytes)
        0x00,                                                           // DSCP 0, ECN 0
        0x00, 0x48,                                                     // total length 72
        0x1c, 0x48,                                                     // identification 0x1c48
        0x40, 0x00,                                                     // flags DF, fragment offset 0
        0x40,                                                           // TTL 64
        0x06,                                                           // protocol 6 (TCP)
        0x09, 0xcc,                                                     // header checksum 0x09cc (Python)
        0x0a, 0x4d, 0x00, 0x01,                                         // source 10.77.0.1
        0x0a, 0x4d, 0x00, 0x02,                                         // destination 10.77.0.2
        0x9c, 0x40,                                                     // source port 40000
        0x00, 0x50,                                                     // destination port 80
        0xce, 0x0a, 0x6a, 0x19,                                         // sequence number 3456789017
        0x77, 0x35, 0x94, 0x14,                                         // acknowledgment number 2000000020
        0xd0,                                                           // data offset 13 (52 bytes)
        0x10,                                                           // flags ACK
        0x01, 0xf5,                                                     // window 501
        0x6c, 0xb4,                                                     // checksum 0x6cb4 (Python)
        0x00, 0x00,                                                     // urgent pointer 0
        0x01,                                                           // option: NOP
        0x01,                                                           // option: NOP
        0x08, 0x0a, 0x07, 0x5b, 0xcd, 0x84, 0x00, 0x01, 0x82, 0xb8,     // option: timestamps TSval 123456900 TSecr 99000
        0x01,                                                           // option: NOP
        0x01,                                                           // option: NOP
        0x05, 0x12, 0x77, 0x35, 0x99, 0xbc, 0x77, 0x35, 0x9f, 0x64, 0x77, 0x35,// option: SACK 2000001468-2000002916, 2000004364-2000005812
        0xa5, 0x0c, 0x77, 0x35, 0xaa, 0xb4,                             
    ]

    /// Server ACK with TS at an odd offset (NOP TS NOP) and 1 payload byte.
    static let oddTimestamps: [UInt8] = [
        0x02, 0x00, 0x0a, 0x4d, 0x00, 0x01,                             // Ethernet destination 02:00:0a:4d:00:01
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56,                             // Ethernet source 52:54:00:12:34:56
        0x08, 0x00,                                                     // EtherType IPv4
        0x45,                                                           // version 4, IHL 5 (20 bytes)
        0x00,                                                           // DSCP 0, ECN 0
        0x00, 0x35,                                                     // total length 53
        0x7a, 0x11,                                                     // identification 0x7a11
        0x40, 0x00,                                                     // flags DF, fragment offset 0
        0x40,                                                           // TTL 64
        0x06,                                                           // protocol 6 (TCP)
        0xac, 0x15,                                                     // header checksum 0xac15 (Python)
        0x0a, 0x4d, 0x00, 0x02,                                         // source 10.77.0.2
        0x0a, 0x4d, 0x00, 0x01,                                         // destination 10.77.0.1
        0x00, 0x50,                                                     // source port 80
        0x9c, 0x40,                                                     // destination port 40000
        0x77, 0x35, 0x94, 0x14,                                         // sequence number 2000000020
        0xce, 0x0a, 0x6a, 0x19,                                         // acknowledgment number 3456789017
        0x80,                                                           // data offset 8 (32 bytes)
        0x10,                                                           // flags ACK
        0x01, 0xfd,                                                     // window 509
        0x08, 0xce,                                                     // checksum 0x08ce (Python)
        0x00, 0x00,                                                     // urgent pointer 0
        0x01,                                                           // option: NOP
        0x08, 0x0a, 0x00, 0x01, 0x83, 0x1c, 0x07, 0x5b, 0xcd, 0x84,     // option: timestamps TSval 99100 TSecr 123456900
        0x01,                                                           // option: NOP
        0x78,                                                           // payload 'x'
    ]

    /// Client FIN with an IPv4 option (IHL 6).
    static let ipOptionsFin: [UInt8] = [
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56,                             // Ethernet destination 52:54:00:12:34:56
        0x02, 0x00, 0x0a, 0x4d, 0x00, 0x01,                             // Ethernet source 02:00:0a:4d:00:01
        0x08, 0x00,                                                     // EtherType IPv4
        0x46,                                                           // version 4, IHL 6 (24 bytes)
        0x00,                                                           // DSCP 0, ECN 0
        0x00, 0x2c,                                                     // total length 44
        0x00, 0x01,                                                     // identification 0x0001
        0x40, 0x00,                                                     // flags DF, fragment offset 0
        0x40,                                                           // TTL 64
        0x06,                                                           // protocol 6 (TCP)
        0x91, 0x2a,                                                     // header checksum 0x912a (Python)
        0x0a, 0x4d, 0x00, 0x01,                                         // source 10.77.0.1
        0x0a, 0x4d, 0x00, 0x02,                                         // destination 10.77.0.2
        0x94, 0x04, 0x00, 0x00,                                         // IPv4 options: router alert (RFC 2113)
        0x9c, 0x41,                                                     // source port 40001
        0x1f, 0x90,                                                     // destination port 8080
        0x00, 0x00, 0x00, 0x01,                                         // sequence number 1
        0x00, 0x00, 0x00, 0x02,                                         // acknowledgment number 2
        0x50,                                                           // data offset 5 (20 bytes)
        0x11,                                                           // flags FIN|ACK
        0x03, 0xe8,                                                     // window 1000
        0xdb, 0x7a,                                                     // checksum 0xdb7a (Python)
        0x00, 0x00,                                                     // urgent pointer 0
    ]

    /// ARP request: who has 10.77.0.2? tell 10.77.0.1.
    static let arpRequest: [UInt8] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff,                             // Ethernet destination ff:ff:ff:ff:ff:ff
        0x02, 0x00, 0x0a, 0x4d, 0x00, 0x01,                             // Ethernet source 02:00:0a:4d:00:01
        0x08, 0x06,                                                     // EtherType ARP
        0x00, 0x01,                                                     // hardware type 1 (Ethernet)
        0x08, 0x00,                                                     // protocol type IPv4
        0x06,                                                           // hardware length 6
        0x04,                                                           // protocol length 4
        0x00, 0x01,                                                     // operation 1 (request)
        0x02, 0x00, 0x0a, 0x4d, 0x00, 0x01,                             // sender MAC 02:00:0a:4d:00:01
        0x0a, 0x4d, 0x00, 0x01,                                         // sender IP 10.77.0.1
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00,                             // target MAC 00:00:00:00:00:00
        0x0a, 0x4d, 0x00, 0x02,                                         // target IP 10.77.0.2
    ]

    /// Gratuitous ARP (RFC 5227 announcement) from the guest.
    static let gratuitousARP: [UInt8] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff,                             // Ethernet destination ff:ff:ff:ff:ff:ff
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56,                             // Ethernet source 52:54:00:12:34:56
        0x08, 0x06,                                                     // EtherType ARP
        0x00, 0x01,                                                     // hardware type 1 (Ethernet)
        0x08, 0x00,                                                     // protocol type IPv4
        0x06,                                                           // hardware length 6
        0x04,                                                           // protocol length 4
        0x00, 0x01,                                                     // operation 1 (request)
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56,                             // sender MAC 52:54:00:12:34:56
        0x0a, 0x4d, 0x00, 0x02,                                         // sender IP 10.77.0.2
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00,                             // target MAC 00:00:00:00:00:00
        0x0a, 0x4d, 0x00, 0x02,                                         // target IP 10.77.0.2
    ]

    /// ARP reply: 10.77.0.2 is at 52:54:00:12:34:56.
    static let arpReply: [UInt8] = [
        0x02, 0x00, 0x0a, 0x4d, 0x00, 0x01,                             // Ethernet destination 02:00:0a:4d:00:01
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56,                             // Ethernet source 52:54:00:12:34:56
        0x08, 0x06,                                                     // EtherType ARP
        0x00, 0x01,                                                     // hardware type 1 (Ethernet)
        0x08, 0x00,                                                     // protocol type IPv4
        0x06,                                                           // hardware length 6
        0x04,                                                           // protocol length 4
        0x00, 0x02,                                                     // operation 2 (reply)
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56,                             // sender MAC 52:54:00:12:34:56
        0x0a, 0x4d, 0x00, 0x02,                                         // sender IP 10.77.0.2
        0x02, 0x00, 0x0a, 0x4d, 0x00, 0x01,                             // target MAC 02:00:0a:4d:00:01
        0x0a, 0x4d, 0x00, 0x01,                                         // target IP 10.77.0.1
    ]

    static let synChecksumWithSeqFFFFFFF0: UInt16 = 0xc780
    static let sackChecksumAfterShift80000010: UInt16 = 0x6c72
    static let oddChecksumAfterTimestamps: UInt16 = 0x6188
}

// The generator (python3 gen.py > golden.txt; also writes Tests/Fuzz/seeds/*.bin):
//
// # Independent golden-frame generator for FTVMWire tests: struct packing + RFC 1071 checksum.
// import struct
//
// def csum(data):
//     if len(data) % 2: data += b"\0"
//     s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
//     while s >> 16: s = (s & 0xFFFF) + (s >> 16)
//     return ~s & 0xFFFF
//
// def mac(s): return bytes(int(x, 16) for x in s.split(":"))
// def ip(s): return bytes(int(x) for x in s.split("."))
//
// class Frame:
//     def __init__(self): self.fields = []
//     def add(self, data, comment): self.fields.append([bytes(data), comment])
//     def raw(self): return b"".join(f[0] for f in self.fields)
//
// def tcp_frame(name, smac, dmac, sip, dip, sport, dport, seq, ack, flags, flagnames, window, options, payload,
//               ipid=0x1c46, ttl=64, ip_options=b"", padding=b"", urgent=0):
//     f = Frame()
//     f.add(mac(dmac), "Ethernet destination " + dmac)
//     f.add(mac(smac), "Ethernet source " + smac)
//     f.add(b"\x08\x00", "EtherType IPv4")
//     ihl = 5 + len(ip_options) // 4
//     tcp_len = 20 + sum(len(o[0]) for o in options) + len(payload)
//     total = ihl * 4 + tcp_len
//     iph = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, ipid, 0x4000, ttl, 6, 0, ip(sip), ip(dip)) + ip_options
//     ipc = csum(iph)
//     f.add(bytes([0x40 | ihl]), "version 4, IHL %d (%d bytes)" % (ihl, ihl * 4))
//     f.add(b"\0", "DSCP 0, ECN 0")
//     f.add(struct.pack("!H", total), "total length %d" % total)
//     f.add(struct.pack("!H", ipid), "identification 0x%04x" % ipid)
//     f.add(b"\x40\x00", "flags DF, fragment offset 0")
//     f.add(bytes([ttl]), "TTL %d" % ttl)
//     f.add(b"\x06", "protocol 6 (TCP)")
//     f.add(struct.pack("!H", ipc), "header checksum 0x%04x (Python)" % ipc)
//     f.add(ip(sip), "source " + sip)
//     f.add(ip(dip), "destination " + dip)
//     if ip_options: f.add(ip_options, "IPv4 options: router alert (RFC 2113)")
//     opts = b"".join(o[0] for o in options)
//     doff = 5 + len(opts) // 4
//     assert len(opts) % 4 == 0
//     hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, window, 0, urgent) + opts
//     pseudo = ip(sip) + ip(dip) + struct.pack("!BBH", 0, 6, tcp_len)
//     tc = csum(pseudo + hdr + payload)
//     f.add(struct.pack("!H", sport), "source port %d" % sport)
//     f.add(struct.pack("!H", dport), "destination port %d" % dport)
//     f.add(struct.pack("!I", seq), "sequence number %d" % seq)
//     f.add(struct.pack("!I", ack), "acknowledgment number %d" % ack)
//     f.add(bytes([doff << 4]), "data offset %d (%d bytes)" % (doff, doff * 4))
//     f.add(bytes([flags]), "flags " + flagnames)
//     f.add(struct.pack("!H", window), "window %d" % window)
//     f.add(struct.pack("!H", tc), "checksum 0x%04x (Python)" % tc)
//     f.add(struct.pack("!H", urgent), "urgent pointer %d" % urgent)
//     for data, comment in options: f.add(data, "option: " + comment)
//     if payload: f.add(payload, "payload %r" % payload.decode())
//     if padding: f.add(padding, "Ethernet padding (not part of the IP packet)")
//     return f, tc
//
// def emit(name, f, doc):
//     out = ["    /// " + doc, "    static let %s: [UInt8] = [" % name]
//     for data, comment in f.fields:
//         # at most 12 bytes per line
//         chunks = [data[i:i + 12] for i in range(0, len(data), 12)] or [b""]
//         for i, ch in enumerate(chunks):
//             line = "        " + ", ".join("0x%02x" % b for b in ch) + ","
//             out.append(line.ljust(72) + ("// " + comment if i == 0 else ""))
//     out.append("    ]")
//     return "\n".join(out)
//
// NOP = (b"\x01", "NOP")
// def MSS(v): return (struct.pack("!BBH", 2, 4, v), "MSS %d" % v)
// SACKP = (b"\x04\x02", "SACK permitted")
// def TS(a, b): return (struct.pack("!BBII", 8, 10, a, b), "timestamps TSval %d TSecr %d" % (a, b))
// def WS(v): return (bytes([3, 3, v]), "window scale %d" % v)
// def SACK(blocks):
//     return (struct.pack("!BB", 5, 2 + 8 * len(blocks)) + b"".join(struct.pack("!II", l, r) for l, r in blocks),
//             "SACK " + ", ".join("%d-%d" % b for b in blocks))
//
// C, G = "02:00:0a:4d:00:01", "52:54:00:12:34:56"
// CI, GI = "10.77.0.1", "10.77.0.2"
// results = []
// extra = {}
//
// syn, c = tcp_frame("syn", C, G, CI, GI, 40000, 80, 3456789012, 0, 0x02, "SYN", 64240,
//                    [MSS(1460), SACKP, TS(123456789, 0), NOP, WS(7)], b"")
// results.append(emit("syn", syn, "Client SYN, Linux option layout: MSS 1460, SACK-permitted, timestamps, NOP, wscale 7."))
// # Expected checksums after rewrites, computed here from scratch.
// def tcp_csum_of(raw, ip_off=14):
//     ihl = (raw[ip_off] & 0xF) * 4
//     total = struct.unpack("!H", raw[ip_off + 2:ip_off + 4])[0]
//     seg = bytearray(raw[ip_off + ihl: ip_off + total])
//     seg[16:18] = b"\0\0"
//     pseudo = raw[ip_off + 12: ip_off + 20] + struct.pack("!BBH", 0, 6, len(seg))
//     return csum(pseudo + bytes(seg))
// raw = bytearray(syn.raw()); raw[38:42] = struct.pack("!I", 0xFFFFFFF0)
// extra["synChecksumWithSeqFFFFFFF0"] = tcp_csum_of(raw)
//
// data, c = tcp_frame("data", C, G, CI, GI, 40000, 80, 3456789013, 2000000001, 0x18, "PSH|ACK", 502, [],
//                     b"ok\r\n", ipid=0x1c47, padding=b"\xee\xee")
// results.append(emit("dataWithPadding", data, "Client data, no options, 4-byte payload; 58 bytes padded to 60 with junk."))
//
// resp, c = tcp_frame("resp", G, C, GI, CI, 80, 40000, 2000000001, 3456789017, 0x18, "PSH|ACK", 509,
//                     [NOP, NOP, TS(99000, 123456800)], b"HTTP/1.0 200 OK\r\n\r\n", ipid=0x7a10)
// results.append(emit("serverData", resp, "Server response with timestamps (NOP NOP TS), 19-byte payload."))
//
// sack, c = tcp_frame("sack", C, G, CI, GI, 40000, 80, 3456789017, 2000000020, 0x10, "ACK", 501,
//                     [NOP, NOP, TS(123456900, 99000), NOP, NOP, SACK([(2000001468, 2000002916), (2000004364, 2000005812)])],
//                     b"", ipid=0x1c48)
// results.append(emit("ackWithTwoSACKBlocks", sack, "Client ACK with timestamps and 2 SACK blocks (data offset 13)."))
// raw = bytearray(sack.raw())
// # shift SACK edges by 0x80000010 (wrapping) and compute the expected checksum
// delta = 0x80000010
// for i in range(4):
//     o = 14 + 20 + 20 + 12 + 4 + 4 * i
//     v = struct.unpack("!I", raw[o:o + 4])[0]
//     raw[o:o + 4] = struct.pack("!I", (v + delta) & 0xFFFFFFFF)
// extra["sackChecksumAfterShift80000010"] = tcp_csum_of(raw)
//
// odd, c = tcp_frame("odd", G, C, GI, CI, 80, 40000, 2000000020, 3456789017, 0x10, "ACK", 509,
//                    [NOP, TS(99100, 123456900), NOP], b"x", ipid=0x7a11)
// results.append(emit("oddTimestamps", odd, "Server ACK with TS at an odd offset (NOP TS NOP) and 1 payload byte."))
// raw = bytearray(odd.raw())
// raw[14 + 20 + 20 + 3: 14 + 20 + 20 + 11] = struct.pack("!II", 0xDEADBEEF, 7)
// extra["oddChecksumAfterTimestamps"] = tcp_csum_of(raw)
//
// ipopt, c = tcp_frame("ipopt", C, G, CI, GI, 40001, 8080, 1, 2, 0x11, "FIN|ACK", 1000, [], b"", ipid=0x0001,
//                      ip_options=b"\x94\x04\x00\x00")
// results.append(emit("ipOptionsFin", ipopt, "Client FIN with an IPv4 option (IHL 6)."))
//
// def arp(name, op, smac, sip, tmac, tip, edst, doc):
//     f = Frame()
//     f.add(mac(edst), "Ethernet destination " + edst)
//     f.add(mac(smac), "Ethernet source " + smac)
//     f.add(b"\x08\x06", "EtherType ARP")
//     f.add(b"\x00\x01", "hardware type 1 (Ethernet)")
//     f.add(b"\x08\x00", "protocol type IPv4")
//     f.add(b"\x06", "hardware length 6")
//     f.add(b"\x04", "protocol length 4")
//     f.add(struct.pack("!H", op), "operation %d (%s)" % (op, "request" if op == 1 else "reply"))
//     f.add(mac(smac), "sender MAC " + smac)
//     f.add(ip(sip), "sender IP " + sip)
//     f.add(mac(tmac), "target MAC " + tmac)
//     f.add(ip(tip), "target IP " + tip)
//     results.append(emit(name, f, doc))
//     return f
//
// arpreq = arp("arpRequest", 1, C, CI, "00:00:00:00:00:00", GI, "ff:ff:ff:ff:ff:ff", "ARP request: who has 10.77.0.2? tell 10.77.0.1.")
// garp = arp("gratuitousARP", 1, G, GI, "00:00:00:00:00:00", GI, "ff:ff:ff:ff:ff:ff", "Gratuitous ARP (RFC 5227 announcement) from the guest.")
// arprep = arp("arpReply", 2, G, GI, C, CI, C, "ARP reply: 10.77.0.2 is at 52:54:00:12:34:56.")
//
// print("\n\n".join(results))
// print()
// for k, v in extra.items(): print("    static let %s: UInt16 = 0x%04x" % (k, v))
//
// # Seed corpus for the fuzzer.
// import os
// os.makedirs("Tests/Fuzz/seeds", exist_ok=True)
// for n, f in [("syn", syn), ("data", data), ("resp", resp), ("sack", sack), ("odd", odd), ("ipopt", ipopt),
//              ("arpreq", arpreq), ("garp", garp), ("arprep", arprep)]:
//     open("Tests/Fuzz/seeds/" + n + ".bin", "wb").write(f.raw())
