import Foundation

/// What a benchmark reads of a server's processes (a process and its direct children: nginx's master and workers)
/// from /proc: peak resident memory and CPU time.
enum ServerProcess {
    /// `pid` and its direct children.
    static func family(_ pid: Int32) -> [Int32] {
        var pids = [pid]
        if let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") {
            for task in tasks {
                let children = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/children", encoding: .utf8)) ?? ""
                pids += children.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            }
        }
        return pids
    }

    /// Sum of VmHWM over the family, MB.
    static func peakMemoryMB(of pid: Int32) -> Double {
        family(pid).reduce(0) { $0 + statusField("VmHWM:", of: $1) }
    }

    /// User + system CPU seconds the family has used so far (utime + stime of /proc/PID/stat).
    static func cpuSeconds(of pid: Int32) -> Double {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return family(pid).reduce(0) { total, member in
            guard let stat = try? String(contentsOfFile: "/proc/\(member)/stat", encoding: .utf8),
                let end = stat.lastIndex(of: ")")
            else { return total }
            // After "pid (comm) ": state is field 3; utime and stime are fields 14 and 15.
            let fields = stat[stat.index(after: end)...].split(separator: " ")
            guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return total }
            return total + (user + system) / ticks
        }
    }

    /// A `kB` field of /proc/PID/status, MB.
    static func statusField(_ name: String, of pid: Int32) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name) })
        else { return 0 }
        return (Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) / 1024
    }
}
