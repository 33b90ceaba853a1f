// libFuzzer entry point for FTVMWire. Built by scripts/fuzz-wire.sh together with
// Sources/FTVMWire/*.swift into one module, with -sanitize=fuzzer,address: the input is copied
// into a heap buffer of exactly its size, so any read or write past the frame is an ASan report.
//
// Beyond "does not crash", it checks properties and traps when one fails:
// - every offset a view reports lies inside the frame;
// - a checksum verifies according to FTVMWire exactly when it verifies by a naive RFC 1071 sum;
// - rewrites change only the TCP header, keep a valid checksum valid, and rewriting a field to a
//   new value and back restores the frame byte for byte (RFC 1624 eqn. 3 is exact unless the
//   checksum field held the non-canonical 0xFFFF);
// - a frame built from fields taken from the input parses back to the same fields.

@_cdecl("LLVMFuzzerTestOneInput")
public func wireFuzzTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 1)
    defer { frame.deallocate() }
    if size > 0 { frame.baseAddress!.copyMemory(from: data, byteCount: size) }
    var input = FuzzInput(UnsafeRawBufferPointer(start: data, count: size))

    switch FrameClass.classify(frame) {
    case .arp(let arp):
        require(arp.offset + ARPView.length <= frame.count)
        _ = (arp.operation, arp.senderMAC, arp.senderIP, arp.targetMAC, arp.targetIP, arp.isGratuitous)
        var reply = [UInt8](repeating: 0, count: FrameBuilder.arpFrameLength)
        reply.withUnsafeMutableBytes { out in
            let length = try? FrameBuilder.arpReply(to: arp, mac: arp.targetMAC, into: out)
            require(length == FrameBuilder.arpFrameLength)
            guard case .arp(let parsed) = FrameClass.classify(out) else { fail("ARP reply does not parse") }
            require(parsed.senderIP == arp.targetIP && parsed.targetMAC == arp.senderMAC)
        }
    case .ipv4Fragment(let ip), .ipv4Other(let ip):
        checkIPv4(ip, frame)
    case .ipv4TCP(var segment):
        checkIPv4(segment.ipv4, frame)
        checkSegment(&segment, frame, &input)
    case .nonIPv4, .unsupported, .truncated, .illegal:
        break
    }
    buildAndParse(&input)
    return 0
}

private func fail(_ message: String) -> Never {
    fatalError("property failed: \(message)")
}

private func require(_ condition: Bool, _ message: @autoclosure () -> String = "", line: Int = #line) {
    if !condition { fail("line \(line) \(message())") }
}

/// Reads values from the fuzz input (after the frame has been used as a frame), zero when it
/// runs out, so the same bytes also steer rewrites and builds.
private struct FuzzInput {
    let bytes: UnsafeRawBufferPointer
    var position = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    mutating func u8() -> UInt8 {
        guard !bytes.isEmpty else { return 0 }
        defer { position += 1 }
        return bytes[(position * 7 + 3) % bytes.count]
    }

    mutating func u16() -> UInt16 { UInt16(u8()) << 8 | UInt16(u8()) }
    mutating func u32() -> UInt32 { UInt32(u16()) << 16 | UInt32(u16()) }
}

private func naiveSum(_ bytes: UnsafeRawBufferPointer, start: UInt32 = 0) -> UInt32 {
    var sum = start
    var index = 0
    while index < bytes.count {
        sum += UInt32(bytes[index]) << 8 | (index + 1 < bytes.count ? UInt32(bytes[index + 1]) : 0)
        sum = (sum & 0xFFFF) + (sum >> 16)
        index += 2
    }
    return sum
}

private func naiveTCPVerifies(_ segment: TCPSegmentView) -> Bool {
    let source = segment.ipv4.source.rawValue
    let destination = segment.ipv4.destination.rawValue
    var pseudo = (source >> 16) + (source & 0xFFFF) + (destination >> 16) + (destination & 0xFFFF)
    pseudo += 6 + UInt32(segment.ipv4.payloadLength)
    while pseudo > 0xFFFF { pseudo = (pseudo & 0xFFFF) + (pseudo >> 16) }
    let bytes = UnsafeRawBufferPointer(
        rebasing: segment.frame[segment.offset..<(segment.offset + segment.ipv4.payloadLength)])
    return naiveSum(bytes, start: pseudo) == 0xFFFF
}

private func checkIPv4(_ ip: IPv4View, _ frame: UnsafeMutableRawBufferPointer) {
    require(ip.headerLength >= 20 && ip.headerLength <= 60)
    require(ip.totalLength >= ip.headerLength)
    require(ip.offset + ip.totalLength <= frame.count)
    require(ip.payload.count == ip.payloadLength && ip.trailingLength >= 0)
    let header = UnsafeRawBufferPointer(rebasing: frame[ip.offset..<(ip.offset + ip.headerLength)])
    require(ip.isHeaderChecksumValid == (naiveSum(header) == 0xFFFF), "IPv4 checksum verdict")
    _ = (ip.computeHeaderChecksum(), ip.fragmentOffset, ip.dontFragment, ip.moreFragments, ip.identification)
}

private func checkSegment(
    _ segment: inout TCPSegmentView, _ frame: UnsafeMutableRawBufferPointer, _ input: inout FuzzInput
) {
    require(segment.headerLength >= 20 && segment.headerLength <= 60)
    require(segment.payloadOffset + segment.payloadLength <= frame.count && segment.payloadLength >= 0)
    require(segment.payload.count == segment.payloadLength)
    let end = segment.payloadOffset
    if let at = segment.optionOffsets.maximumSegmentSize { require(at + 2 <= end) }
    if let at = segment.optionOffsets.windowScale { require(at + 1 <= end) }
    if let at = segment.optionOffsets.timestamps { require(at + 8 <= end) }
    if let at = segment.optionOffsets.sackBlocks { require(at + 8 * segment.options.sackBlocks.count <= end) }
    _ = (segment.fourTuple, segment.segmentLength, segment.flags, segment.urgentPointer)

    let valid = segment.isChecksumValid
    require(valid == naiveTCPVerifies(segment), "TCP checksum verdict")
    let computed = segment.computeChecksum()
    require(valid == (computed == segment.checksum || (computed == 0 && segment.checksum == 0xFFFF)))

    let original = Array(frame)
    let canonical = segment.checksum != 0xFFFF
    let seq = segment.sequenceNumber
    let ack = segment.acknowledgmentNumber
    let window = segment.window
    let timestamps = segment.options.timestamps
    let delta = input.u32()

    segment.setSequenceNumber(SequenceNumber(input.u32()))
    segment.setAcknowledgmentNumber(SequenceNumber(input.u32()))
    segment.shiftSACKBlocks(by: delta)
    let hadTimestamps = segment.setTimestamps(TCPTimestamps(value: input.u32(), echoReply: input.u32()))
    require(hadTimestamps == (timestamps != nil))
    segment.setWindow(input.u16())
    require(segment.isChecksumValid == valid, "rewrite changed checksum validity")
    require(segment.isChecksumValid == naiveTCPVerifies(segment), "TCP checksum verdict after rewrite")
    for index in 0..<segment.offset { require(frame[index] == original[index], "byte \(index) before TCP changed") }
    for index in segment.payloadOffset..<frame.count { require(frame[index] == original[index], "payload changed") }

    // And back again.
    segment.setSequenceNumber(seq)
    segment.setAcknowledgmentNumber(ack)
    segment.shiftSACKBlocks(by: 0 &- delta)
    if let timestamps { segment.setTimestamps(timestamps) }
    segment.setWindow(window)
    if canonical {
        for index in 0..<frame.count { require(frame[index] == original[index], "round trip differs at \(index)") }
    } else {
        require(segment.isChecksumValid == valid)
    }
}

private func buildAndParse(_ input: inout FuzzInput) {
    var options = TCPOptions()
    let which = input.u8()
    if which & 1 != 0 { options.maximumSegmentSize = input.u16() }
    if which & 2 != 0 { options.windowScale = input.u8() }
    options.sackPermitted = which & 4 != 0
    if which & 8 != 0 { options.timestamps = TCPTimestamps(value: input.u32(), echoReply: input.u32()) }
    for _ in 0..<Int(which >> 4 & 7) {
        let left = SequenceNumber(input.u32())
        if (try? options.sackBlocks.append(SACKBlock(left: left, right: left &+ input.u32()))) == nil { break }
    }
    let spec = TCPFrameSpec(
        sourceMAC: MACAddress(rawValue: UInt64(input.u32()) << 16 | UInt64(input.u16())),
        destinationMAC: MACAddress(rawValue: UInt64(input.u32())), source: IPv4Address(rawValue: input.u32()),
        destination: IPv4Address(rawValue: input.u32()), sourcePort: input.u16(), destinationPort: input.u16(),
        sequenceNumber: SequenceNumber(input.u32()), acknowledgmentNumber: SequenceNumber(input.u32()),
        flags: TCPFlags(rawValue: input.u8()), window: input.u16(), options: options, identification: input.u16(),
        urgentPointer: input.u16())
    let payload = (0..<Int(input.u8())).map { _ in input.u8() }
    var out = [UInt8](repeating: 0, count: 14 + 20 + 60 + payload.count)
    let length: Int?
    do {
        length = try payload.withUnsafeBytes { payload in
            try out.withUnsafeMutableBytes { try FrameBuilder.tcp(spec, payload: payload, into: $0) }
        }
    } catch {
        require(error as? WireError == .tcpOptionsTooLong(length: options.encodedLength) && options.encodedLength > 40)
        return
    }
    out.withUnsafeMutableBytes { buffer in
        let frame = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length!])
        guard case .ipv4TCP(let segment) = FrameClass.classify(frame) else { fail("built frame does not parse") }
        require(
            segment.isChecksumValid,
            "built TCP checksum \(segment.checksum) computed \(segment.computeChecksum()) len \(length!)")
        require(segment.ipv4.isHeaderChecksumValid, "built IPv4 checksum")
        require(naiveTCPVerifies(segment), "built TCP checksum, naive \(Array(frame))")
        require(
            segment.fourTuple
                == FourTuple(
                    sourceAddress: spec.source, sourcePort: spec.sourcePort, destinationAddress: spec.destination,
                    destinationPort: spec.destinationPort))
        require(segment.ethernet.source == spec.sourceMAC && segment.ethernet.destination == spec.destinationMAC)
        require(
            segment.sequenceNumber == spec.sequenceNumber && segment.acknowledgmentNumber == spec.acknowledgmentNumber)
        require(
            segment.flags == spec.flags && segment.window == spec.window && segment.urgentPointer == spec.urgentPointer)
        require(segment.options == spec.options, "options round trip")
        require(segment.ipv4.identification == spec.identification && segment.ipv4.timeToLive == 64)
        require(Array(segment.payload) == payload)
    }
}
