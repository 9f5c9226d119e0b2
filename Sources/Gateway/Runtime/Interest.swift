import CGatewayShims
import Glibc

/// What a loop watches a descriptor for. Only `EventLoop` turns it into epoll bits: connection
/// code says what it wants, never how epoll spells it.
struct Interest: OptionSet, Sendable {
    let rawValue: UInt8

    /// Bytes to read, or the peer's half-close.
    static let read = Interest(rawValue: 1)
    /// Room to write (and a non-blocking connect's outcome).
    static let write = Interest(rawValue: 2)

    var epollMask: UInt32 {
        (contains(.read) ? UInt32(EPOLLIN.rawValue | EPOLLRDHUP.rawValue) : 0) | (contains(.write) ? UInt32(EPOLLOUT.rawValue) : 0)
    }
}

/// What the loop saw happen on a descriptor, decoded from epoll's bits in one place.
struct IOEvents: Sendable {
    let epollBits: UInt32

    /// A read will tell something: bytes, the end of input, or an error.
    var readable: Bool { epollBits & UInt32(EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue | EPOLLRDHUP.rawValue) != 0 }
    var writable: Bool { epollBits & UInt32(EPOLLOUT.rawValue) != 0 }
    /// An error or a hang-up (a connect that failed, a reset).
    var failed: Bool { epollBits & UInt32(EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 }

    static let none = IOEvents(epollBits: 0)
    static let writableOnly = IOEvents(epollBits: UInt32(EPOLLOUT.rawValue))
}
