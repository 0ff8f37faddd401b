package fsm

import "strconv"

// Property returns what a message selector reads for name: a JMS header
// name maps to the STOMP header or field that carries it, any other name
// to the user header of that name (its first occurrence, as STOMP reads
// repeated headers). It is the one mapping, so the FSM (durable
// subscriptions) and the leader's engine (queues, topics) select alike.
//
// JMSDeliveryMode reads PERSISTENT or NON_PERSISTENT, JMSPriority 0 to 9,
// JMSTimestamp and JMSExpiration unix milliseconds (no expiration is 0),
// as ActiveMQ presents them to selectors.
func (m *Message) Property(name string) (string, bool) {
	switch name {
	case "JMSMessageID":
		return m.ID, m.ID != ""
	case "JMSDestination":
		return m.Destination, true
	case "JMSPriority":
		return strconv.Itoa(int(m.Priority)), true
	case "JMSTimestamp":
		return strconv.FormatInt(m.Timestamp, 10), true
	case "JMSExpiration":
		return strconv.FormatInt(m.Expires, 10), true
	case "JMSDeliveryMode":
		if m.Persistent {
			return "PERSISTENT", true
		}
		return "NON_PERSISTENT", true
	case "JMSCorrelationID":
		name = "correlation-id"
	case "JMSType":
		name = "type"
	case "JMSReplyTo":
		name = "reply-to"
	}
	return m.Header(name)
}

// Header returns the value of the user header key, its first occurrence.
func (m *Message) Header(key string) (string, bool) {
	for _, h := range m.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return "", false
}
