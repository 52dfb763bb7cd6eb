import Dispatch
import Foundation
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
fileprivate final class Slots<T>: @unchecked Sendable {
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

/// Long-lived worker threads fed from one queue of jobs, in order: the issuance engine's signers.
///
/// A job is `body(0..<count)`; workers take its indices one at a time and go straight on to the next job's when it
/// has none left, so with the next round already queued no worker waits at a round's end. The threads are the pool's
/// own (never an event loop or the cooperative pool): PKCS#11 calls block, and each takes a session from the token's
/// pool for the duration of one signature.
final class WorkerPool: @unchecked Sendable {
    private let condition = NSCondition()
    /// Guarded by `condition`: jobs with indices not yet taken, and the next index of the first.
    private var queue: [(job: any PoolJob, next: Int)] = []
    private var stopped = false

    init(threads: Int) {
        for index in 0..<max(1, threads) {
            let thread = Thread { [self] in work() }
            thread.name = "metertrust-worker-\(index)"
            thread.start()
        }
    }

    /// Queues `body(0..<count)`; the results come from ``PoolJobResults/values()`` in index order.
    func submit<T: Sendable>(count: Int, _ body: @escaping @Sendable (Int) -> T) -> PoolJobResults<T> {
        let job = PoolJobResults(count: count, body: body)
        guard count > 0 else { return job }
        condition.lock()
        queue.append((job, 0))
        condition.broadcast()
        condition.unlock()
        return job
    }

    /// Drops the jobs not yet started (after an error nobody waits for them: no signature is made for nothing) and
    /// lets the threads finish the indices they are running and exit.
    func shutdown() {
        condition.lock()
        stopped = true
        queue.removeAll()
        condition.broadcast()
        condition.unlock()
    }

    private func work() {
        while true {
            condition.lock()
            while queue.isEmpty && !stopped { condition.wait() }
            guard !queue.isEmpty else {
                condition.unlock()
                return
            }
            let job = queue[0].job
            let index = queue[0].next
            queue[0].next += 1
            if queue[0].next == job.count { queue.removeFirst() }
            condition.unlock()
            job.run(index)
        }
    }
}

private protocol PoolJob: AnyObject, Sendable {
    var count: Int { get }
    func run(_ index: Int)
}

/// One job's results: each slot written by the worker that ran its index, handed out when the last is done.
final class PoolJobResults<T: Sendable>: PoolJob, @unchecked Sendable {
    let count: Int
    private let body: @Sendable (Int) -> T
    private let slots: Slots<T>
    private let lock = NSLock()
    /// Guarded by `lock`.
    private var finished = 0
    private var waiting: CheckedContinuation<[T], Never>?

    fileprivate init(count: Int, body: @escaping @Sendable (Int) -> T) {
        self.count = count
        self.body = body
        self.slots = Slots(count: count)
    }

    fileprivate func run(_ index: Int) {
        slots.set(index, body(index))
        lock.lock()
        finished += 1
        let waiter = finished == count ? waiting.take() : nil
        lock.unlock()
        waiter?.resume(returning: slots.values)
    }

    /// The results in index order, once every index has run.
    func values() async -> [T] {
        await withCheckedContinuation { continuation in
            lock.lock()
            if finished == count {
                lock.unlock()
                continuation.resume(returning: slots.values)
            } else {
                waiting = continuation
                lock.unlock()
            }
        }
    }
}
