/// An error from a store. The code is opaque and growable; the message says what and what to do.
///
/// Every backend maps each kind of constraint failure to its own code, so a caller never reads a foreign key or a
/// CHECK as a duplicate (the admin service once reported every constraint failure as "already approved").
public struct StoreError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible, CaseIterable {
        enum Backing: Hashable, Sendable, CaseIterable {
            case duplicate, serialInUse, meterProvisioned, keyReused, foreignKey, checkViolation, notNull, constraint, notFound, unavailable, migration, corrupt
        }
        let backing: Backing
        /// A uniqueness constraint (UNIQUE or PRIMARY KEY) refused the write: serial per issuer, CA name, one approval
        /// per custodian per request, one device identity per EUI-64, ...
        public static let duplicate = Code(backing: .duplicate)
        /// The issuer already used this serial: a collision, which a fresh serial resolves.
        public static let serialInUse = Code(backing: .serialInUse)
        /// The meter (EUI-64) already has a device identity certificate.
        public static let meterProvisioned = Code(backing: .meterProvisioned)
        /// A device certificate's subject key already belongs to another meter (a cloned meter, or one lying about
        /// who it is); the message names that meter's EUI-64.
        public static let keyReused = Code(backing: .keyReused)
        /// The write refers to a row that does not exist (an approval of an unknown request or by an unknown
        /// custodian, a batch of an unknown manufacturer, the revocation of an unknown certificate), or a delete would
        /// leave rows pointing at nothing.
        public static let foreignKey = Code(backing: .foreignKey)
        /// A CHECK constraint of the schema (or a trigger enforcing a rule) refused the value: a request state outside
        /// the closed set, a policy needing fewer than one approval, an unknown certificate kind, ...
        public static let checkViolation = Code(backing: .checkViolation)
        /// A required value was missing.
        public static let notNull = Code(backing: .notNull)
        /// Any other constraint of the schema the backend reports without saying which kind.
        public static let constraint = Code(backing: .constraint)
        public static let notFound = Code(backing: .notFound)
        public static let unavailable = Code(backing: .unavailable)
        public static let migration = Code(backing: .migration)
        public static let corrupt = Code(backing: .corrupt)

        public static let allCases: [Code] = Backing.allCases.map(Code.init(backing:))

        /// A stable name for the code, for logs, problem documents and exit statuses; never changes once shipped.
        public var description: String {
            switch backing {
            case .duplicate: "duplicate"
            case .serialInUse: "serial-in-use"
            case .meterProvisioned: "meter-provisioned"
            case .keyReused: "key-reused"
            case .foreignKey: "foreign-key"
            case .checkViolation: "check"
            case .notNull: "not-null"
            case .constraint: "constraint"
            case .notFound: "not-found"
            case .unavailable: "unavailable"
            case .migration: "migration"
            case .corrupt: "corrupt"
            }
        }
    }

    public let code: Code
    public let message: String
    public var description: String { message }

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}

extension StoreError.Code {
    /// What a constraint failure of this code means, in words every backend puts before the database's own message.
    public var constraintExplanation: String {
        switch backing {
        case .duplicate: "the store refused a duplicate"
        case .serialInUse: "the issuer already used this serial"
        case .meterProvisioned: "the meter already has a device identity certificate"
        case .keyReused: "the public key already belongs to another meter"
        case .foreignKey: "the store refused a reference to a record it does not hold"
        case .checkViolation: "the store refused a value its schema does not allow"
        case .notNull: "the store refused a record with a required value missing"
        default: "the store refused the write"
        }
    }
}
