import Foundation

/// A value shared between test threads (load generators, clients racing a login), behind one
/// lock: the only locked box the tests use.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value

    init(_ value: Value) { stored = value }

    @discardableResult
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&stored)
    }

    var value: Value { withLock { $0 } }
}

extension Locked where Value == Int {
    func add() { withLock { $0 += 1 } }
}
