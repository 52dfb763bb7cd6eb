/// An error from a store. The code is opaque and growable; the message says what and what to do.
public struct StoreError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Backing: Hashable, Sendable { case duplicate, notFound, unavailable, migration, corrupt }
        let backing: Backing
        /// A uniqueness constraint refused the write (serial per issuer, CA name, ...).
        public static let duplicate = Code(backing: .duplicate)
        public static let notFound = Code(backing: .notFound)
        public static let unavailable = Code(backing: .unavailable)
        public static let migration = Code(backing: .migration)
        public static let corrupt = Code(backing: .corrupt)
        public var description: String { "\(backing)" }
    }

    public let code: Code
    public let message: String
    public var description: String { message }

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}
