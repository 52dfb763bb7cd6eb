import Dispatch

/// `body(0..<count)` on `workers` threads (worker w takes indices w, w+workers, ...), off the caller's executor;
/// results in index order. The threads are Dispatch's, never an event loop or the cooperative pool.
func parallelMap<T: Sendable>(count: Int, workers: Int, _ body: @escaping @Sendable (Int) -> T) async -> [T] {
    guard count > 0 else { return [] }
    let workers = max(1, min(workers, count))
    return await withCheckedContinuation { continuation in
        DispatchQueue.global(qos: .userInitiated).async {
            let slots = Slots<T>(count: count)
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                var index = worker
                while index < count {
                    slots.set(index, body(index))
                    index += workers
                }
            }
            continuation.resume(returning: slots.values)
        }
    }
}

/// Result slots written by several threads, each slot by exactly one, read after all are done.
private final class Slots<T>: @unchecked Sendable {
    private let storage: UnsafeMutableBufferPointer<T?>

    init(count: Int) {
        storage = .allocate(capacity: count)
        storage.initialize(repeating: nil)
    }

    deinit {
        storage.deinitialize()
        storage.deallocate()
    }

    func set(_ index: Int, _ value: T) { storage[index] = value }

    var values: [T] { storage.map { $0! } }
}
