import CGatewayShims

/// An answer's head as the name/value list nghttp2 submits: `:status` first, field names
/// lower-cased (HTTP/2 has no upper case), the connection-specific fields of HTTP/1.1 left out.
/// One per worker, reused for every answer: nghttp2 copies the list when it is submitted.
final class HTTP2FieldList {
    private let bytes: UnsafeMutableRawPointer
    private let byteCapacity: Int
    private var used = 0
    private let nva: UnsafeMutablePointer<nghttp2_nv>
    private let maxFields: Int
    private var count = 0

    init(byteCapacity: Int = HTTPLimits.maxHeadBytes + 1024, maxFields: Int = 1024) {
        self.byteCapacity = byteCapacity
        self.maxFields = maxFields
        bytes = .allocate(byteCount: byteCapacity, alignment: 8)
        nva = .allocate(capacity: maxFields)
    }

    deinit {
        bytes.deallocate()
        nva.deallocate()
    }

    /// The head of one of the gateway's own answers (`bodyLength` nil: no body, no type).
    func withLocal(_ m: LocalMessage, bodyLength: Int?, _ submit: (UnsafePointer<nghttp2_nv>, Int) -> Bool) -> Bool {
        reset()
        guard addStatus(m.status) else { return false }
        if let n = bodyLength {
            guard add("content-type", "application/json"), addNumber("content-length", n) else { return false }
        }
        if m.challengesBearer, !add("www-authenticate", LocalMessage.bearerChallenge) { return false }
        if let r = m.retryAfter, !addNumber("retry-after", r) { return false }
        return submit(nva, count)
    }

    /// An upstream's answer head: its end-to-end fields, and `content-length` when the length is
    /// known. False when it does not fit (the exchange answers 502).
    func withForwarded(_ head: ForwardedResponseHead, _ submit: (UnsafePointer<nghttp2_nv>, Int) -> Bool) -> Bool? {
        reset()
        guard addStatus(head.status) else { return nil }
        var fits = true
        head.forEachField { name, value in
            if fits { fits = add(name, value, lowercasing: true) }
        }
        if case let .length(n) = head.body, fits { fits = addNumber("content-length", Int(n)) }
        guard fits else { return nil }
        return submit(nva, count)
    }

    /// The 200 that opens a WebSocket over a stream (RFC 8441), with the subprotocol and
    /// extensions the upstream's 101 chose (its Sec-WebSocket-Accept answers a key the client
    /// never sent, and is left out).
    func withTunnel(_ head: ForwardedResponseHead, _ submit: (UnsafePointer<nghttp2_nv>, Int) -> Bool) -> Bool {
        reset()
        guard addStatus(200) else { return false }
        var fits = true
        head.forEachField { name, value in
            guard fits else { return }
            if HeaderName.equals(name, "sec-websocket-protocol") || HeaderName.equals(name, "sec-websocket-extensions") {
                fits = add(name, value, lowercasing: true)
            }
        }
        return fits && submit(nva, count)
    }

    // MARK: building

    private func reset() {
        used = 0
        count = 0
    }

    private func addStatus(_ status: Int) -> Bool {
        addNumber(":status", status)
    }

    private func addNumber(_ name: StaticString, _ n: Int) -> Bool {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        return withUnsafeMutableBytes(of: &digits) { scratch -> Bool in
            var b = ByteBuffer(base: scratch.baseAddress!, capacity: scratch.count)
            _ = b.append(decimal: Int64(n))
            return add(UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount), b.readable)
        }
    }

    private func add(_ name: StaticString, _ value: String) -> Bool {
        var v = value
        return v.withUTF8 { add(UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount), UnsafeRawBufferPointer($0)) }
    }

    private func add(_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, lowercasing: Bool = false) -> Bool {
        guard count < maxFields, used + name.count + value.count <= byteCapacity else { return false }
        let n = bytes + used
        for i in 0..<name.count { n.storeBytes(of: lowercasing ? HTTPBytes.lower(name[i]) : name[i], toByteOffset: i, as: UInt8.self) }
        used += name.count
        let v = bytes + used
        if value.count > 0 { v.copyMemory(from: value.baseAddress!, byteCount: value.count) }
        used += value.count
        nva[count] = nghttp2_nv(name: n.assumingMemoryBound(to: UInt8.self), value: v.assumingMemoryBound(to: UInt8.self),
                                namelen: name.count, valuelen: value.count, flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue))
        count += 1
        return true
    }
}
