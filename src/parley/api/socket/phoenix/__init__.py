"""The Phoenix Channels protocol: V1/V2 serializers and the upgrade decision."""
