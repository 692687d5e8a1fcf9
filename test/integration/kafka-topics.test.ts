import { KafkaTopics } from '../../src/sources/kafka-topics.ts';
import { KAFKA_BROKERS } from '../support/services.ts';
import { topicsContract } from '../sources/topics.contract.ts';

topicsContract('Kafka (kafkajs)', () => new KafkaTopics({ brokers: KAFKA_BROKERS, clientId: 'logflow-contract' }));
