export { SubscriptionTrie, type MatchVisitor } from './subscription-trie.js';
export { TopicTree } from './topic-tree.js';
