import Dispatch
import Synchronization

/// `body(0..<count)` on `workers` threads, off the caller's executor; results in index order. The threads are
/// Dispatch's, never an event loop or the cooperative pool.
///
/// Each worker takes the next index not yet taken, so a worker that loses its core for a while (to the store's
/// writer, or another process) leaves the work to the others instead of holding up the round's end.
func parallelMap<T: Sendable>(count: Int, workers: Int, _ body: @escaping @Sendable (Int) -> T) async -> [T] {
    guard count > 0 else { return [] }
    let workers = max(1, min(workers, count))
    return await withCheckedContinuation { continuation in
        DispatchQueue.global(qos: .userInitiated).async {
            let slots = Slots<T>(count: count)
            DispatchQueue.concurrentPerform(iterations: workers) { _ in
                while let index = slots.take() { slots.set(index, body(index)) }
            }
            continuation.resume(returning: slots.values)
        }
    }
}

/// Result slots written by several threads, each slot by exactly one (the one that took its index), read after all
/// are done.
private final class Slots<T>: @unchecked Sendable {
    private let storage: UnsafeMutableBufferPointer<T?>
    private let next = Atomic<Int>(0)

    init(count: Int) {
        storage = .allocate(capacity: count)
        storage.initialize(repeating: nil)
    }

    deinit {
        storage.deinitialize()
        storage.deallocate()
    }

    /// The next index no worker has taken, or nil when all are taken.
    func take() -> Int? {
        let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
        return index < storage.count ? index : nil
    }

    func set(_ index: Int, _ value: T) { storage[index] = value }

    var values: [T] { storage.map { $0! } }
}

/// `body(worker)` once for each of `workers` workers, concurrently, off the caller's executor; results by worker.
/// For measurements that need exactly that many threads busy at once.
func onEachWorker<T: Sendable>(_ workers: Int, _ body: @escaping @Sendable (Int) -> T) async -> [T] {
    await withCheckedContinuation { continuation in
        DispatchQueue.global(qos: .userInitiated).async {
            let slots = Slots<T>(count: workers)
            DispatchQueue.concurrentPerform(iterations: workers) { worker in slots.set(worker, body(worker)) }
            continuation.resume(returning: slots.values)
        }
    }
}
