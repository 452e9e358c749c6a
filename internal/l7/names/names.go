// Package names holds the protocols, methods and statuses the l7 family reports: the only
// values its attributes can take. bpf/include/l7_names.h is generated from these tables (go
// generate, internal/l7/mkheader.go), so the BPF side and the names here cannot drift apart.
package names

// Protocols by id; the ids below 2 are connection states, not protocols.
var Protocols = [...]string{
	ProtoUnknown: "", ProtoIgnore: "",
	ProtoHTTP: "http", ProtoHTTP2: "http2", ProtoGRPC: "grpc", ProtoRedis: "redis",
	ProtoMySQL: "mysql", ProtoPostgres: "postgresql", ProtoKafka: "kafka", ProtoMongo: "mongodb",
	ProtoDNS: "dns",
}

const (
	ProtoUnknown  = 0 // no bytes seen yet
	ProtoIgnore   = 1 // the first bytes matched nothing: the connection is ignored from then on
	ProtoHTTP     = 2
	ProtoHTTP2    = 3
	ProtoGRPC     = 4
	ProtoRedis    = 5
	ProtoMySQL    = 6
	ProtoPostgres = 7
	ProtoKafka    = 8
	ProtoMongo    = 9
	ProtoDNS      = 10
)

// Roles by id.
var Roles = [...]string{1: "client", 2: "server"}

// Other is the method of a request whose method is not in its protocol's list.
const Other = "OTHER"

// Methods per protocol, by id; id 0 is Other. The loader puts these names into the kernel's
// name map; a method is matched there against them (HTTP and Redis case-insensitively, as
// their servers do; SQL keywords likewise; MongoDB's command names exactly, as its servers
// do). DNS methods are query types, recorded by number (DNSTypes). Kafka's are numbers too:
// the kernel records a request's API key plus one, the index of its name here (Numeric).
var Methods = map[int][]string{
	ProtoHTTP: {Other, "GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "CONNECT", "TRACE"},
	ProtoRedis: {Other, "GET", "SET", "INCR", "DECR", "DEL", "EXISTS", "EXPIRE", "TTL", "MGET", "MSET",
		"HGET", "HSET", "HGETALL", "HDEL", "LPUSH", "RPUSH", "LPOP", "RPOP", "LRANGE", "SADD", "SREM",
		"SMEMBERS", "SPOP", "ZADD", "ZRANGE", "ZPOPMIN", "ZREM", "PING", "ECHO", "INFO", "AUTH",
		"SELECT", "CONFIG", "KEYS", "SCAN", "PUBLISH", "MULTI", "EXEC", "EVAL", "EVALSHA", "HELLO",
		"CLIENT", "COMMAND", "INCRBY", "SETEX", "GETSET", "APPEND", "STRLEN", "HINCRBY", "FLUSHALL",
		"FLUSHDB", "DBSIZE", "LLEN", "SPUBLISH", "SUBSCRIBE", "XADD", "XRANGE", "XREAD"},
	// SQL statement classes, from the statement's first keyword (PostgreSQL: from the
	// command tag of what ran, when it completed). PREPARE is a statement prepared for later
	// execution without executing it (MySQL COM_STMT_PREPARE, a PostgreSQL Parse/Sync batch
	// that executes nothing, SQL PREPARE).
	ProtoMySQL:    sqlMethods,
	ProtoPostgres: sqlMethods,
	// Kafka's APIs by key (index = key + 1), named as in Kafka's message definitions
	// (clients/src/main/resources/common/message); keys past the list are Other.
	ProtoKafka: {Other, "Produce", "Fetch", "ListOffsets", "Metadata", "LeaderAndIsr", "StopReplica",
		"UpdateMetadata", "ControlledShutdown", "OffsetCommit", "OffsetFetch", "FindCoordinator",
		"JoinGroup", "Heartbeat", "LeaveGroup", "SyncGroup", "DescribeGroups", "ListGroups",
		"SaslHandshake", "ApiVersions", "CreateTopics", "DeleteTopics", "DeleteRecords",
		"InitProducerId", "OffsetForLeaderEpoch", "AddPartitionsToTxn", "AddOffsetsToTxn", "EndTxn",
		"WriteTxnMarkers", "TxnOffsetCommit", "DescribeAcls", "CreateAcls", "DeleteAcls",
		"DescribeConfigs", "AlterConfigs", "AlterReplicaLogDirs", "DescribeLogDirs",
		"SaslAuthenticate", "CreatePartitions", "CreateDelegationToken", "RenewDelegationToken",
		"ExpireDelegationToken", "DescribeDelegationToken", "DeleteGroups", "ElectLeaders",
		"IncrementalAlterConfigs", "AlterPartitionReassignments", "ListPartitionReassignments",
		"OffsetDelete", "DescribeClientQuotas", "AlterClientQuotas", "DescribeUserScramCredentials",
		"AlterUserScramCredentials", "Vote", "BeginQuorumEpoch", "EndQuorumEpoch", "DescribeQuorum",
		"AlterPartition", "UpdateFeatures", "Envelope", "FetchSnapshot", "DescribeCluster",
		"DescribeProducers", "BrokerRegistration", "BrokerHeartbeat", "UnregisterBroker",
		"DescribeTransactions", "ListTransactions", "AllocateProducerIds", "ConsumerGroupHeartbeat",
		"ConsumerGroupDescribe", "ControllerRegistration", "GetTelemetrySubscriptions", "PushTelemetry",
		"AssignReplicasToDirs", "ListConfigResources", "DescribeTopicPartitions", "ShareGroupHeartbeat",
		"ShareGroupDescribe", "ShareFetch", "ShareAcknowledge", "AddRaftVoter", "RemoveRaftVoter",
		"UpdateRaftVoter", "InitializeShareGroupState", "ReadShareGroupState", "WriteShareGroupState",
		"DeleteShareGroupState", "ReadShareGroupStateSummary", "StreamsGroupHeartbeat",
		"StreamsGroupDescribe", "DescribeShareGroupOffsets", "AlterShareGroupOffsets",
		"DeleteShareGroupOffsets"},
	// MongoDB commands: the name of the first element of the command document (OP_MSG's
	// section 0, legacy OP_QUERY's query). Names longer than 16 bytes cannot be matched in
	// the kernel and are not listed (commitTransaction is Other).
	ProtoMongo: {Other, "find", "insert", "update", "delete", "aggregate", "getMore", "count",
		"distinct", "findAndModify", "hello", "isMaster", "ismaster", "ping", "saslStart",
		"saslContinue", "authenticate", "logout", "endSessions", "startSession", "refreshSessions",
		"killSessions", "killCursors", "listCollections", "listDatabases", "listIndexes",
		"createIndexes", "dropIndexes", "create", "drop", "dropDatabase", "collMod",
		"renameCollection", "buildInfo", "buildinfo", "serverStatus", "dbStats", "collStats",
		"dataSize", "explain", "getLastError", "getParameter", "setParameter", "whatsmyuri",
		"connectionStatus", "hostInfo", "listCommands", "currentOp", "killOp", "bulkWrite",
		"abortTransaction", "createUser", "dropUser", "updateUser", "usersInfo", "getLog",
		"validate", "compact", "mapReduce", "replSetGetStatus", "getCmdLineOpts"},
}

var sqlMethods = []string{Other, "SELECT", "INSERT", "UPDATE", "DELETE", "BEGIN", "COMMIT", "ROLLBACK", "PREPARE"}

// CMethods are the methods whose ids the BPF side needs as constants (l7_names.h).
var CMethods = map[int][]string{ProtoMySQL: {"PREPARE"}, ProtoPostgres: {"PREPARE"}}

// Aliases are further names of a protocol's methods, matched like them: name -> method.
var Aliases = map[int]map[string]string{
	ProtoMySQL:    {"START": "BEGIN"},                                       // START TRANSACTION
	ProtoPostgres: {"START": "BEGIN", "END": "COMMIT", "ABORT": "ROLLBACK"}, // their synonyms
}

// DNSTypes are the DNS query types reported by name; others are Other.
var DNSTypes = map[uint16]string{1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT",
	28: "AAAA", 33: "SRV", 64: "SVCB", 65: "HTTPS", 255: "ANY"}

// Status of a response: HTTP's status class (1 to 5), else ok or error.
const (
	StatusOK    = 0
	StatusError = 6
)

// Lost is the method under which the kernel side counts messages it could not count as
// requests; the status is then one of the Lost* reasons.
const Lost = 0xffff

// Reasons a message was not counted, by their status under method Lost.
var LostReasons = map[uint16]string{1: "resync", 2: "unanswered_response", 3: "queue_full"}

// StatusName is the status attribute of a response of protocol proto with status s.
func StatusName(proto int, s uint16) string {
	if proto == ProtoHTTP && s >= 1 && s <= 5 {
		return string(rune('0'+s)) + "xx"
	}
	if s == StatusOK {
		return "ok"
	}
	return "error"
}

// Numeric reports whether the kernel records proto's methods as numbers (DNS query types,
// Kafka API keys) rather than by looking names up in its name map.
func Numeric(proto int) bool { return proto == ProtoDNS || proto == ProtoKafka }

// MethodName is the method attribute of method id m of protocol proto.
func MethodName(proto int, m uint16) string {
	if proto == ProtoDNS {
		if n, ok := DNSTypes[m]; ok {
			return n
		}
		return Other
	}
	if ms := Methods[proto]; int(m) < len(ms) {
		return ms[m]
	}
	return Other
}

// Folded reports whether proto's method names are matched case-insensitively.
func Folded(proto int) bool {
	return proto == ProtoRedis || proto == ProtoMySQL || proto == ProtoPostgres
}
