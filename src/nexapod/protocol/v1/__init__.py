"""Version 1 of the NexaPod wire protocol (HTTP+JSON under ``/v1/``).

Every message forbids unknown fields; a breaking change is a new version package.
"""

from nexapod.protocol.v1.challenges import (
    CHALLENGE_STATUSES,
    ChallengeAnswer,
    ChallengeAnswerDocument,
    ChallengeList,
    ChallengeOutcome,
    ChallengeView,
)
from nexapod.protocol.v1.jobs import (
    JOB_STATUSES,
    JobList,
    JobView,
    MgfDataset,
    NeighbourView,
    NodeContribution,
    SpectrumNeighbours,
    SubmitJobRequest,
    SyntheticDataset,
    UnitFailure,
    UnitLease,
    UnitView,
)
from nexapod.protocol.v1.leases import (
    CheckpointDocument,
    CheckpointUpload,
    ComputeRecord,
    ComputeRecordPage,
    FailureReport,
    InputRef,
    LeaseGrant,
    LeaseRequest,
    LeaseResponse,
    ResultAck,
    ResultDocument,
    ResultItem,
    SubmitResultsRequest,
    SubmitResultsResponse,
)
from nexapod.protocol.v1.ledger import (
    AccountView,
    TransferBatchRequest,
    TransferBatchResponse,
    TransferItem,
    TransferOutcome,
    TransferPage,
    TransferView,
)
from nexapod.protocol.v1.problem import Problem
from nexapod.protocol.v1.registry import (
    GpuInfo,
    HardwareProfile,
    NodeDocument,
    NodeView,
    RegisterNodeRequest,
    RegisterUserRequest,
    UserDocument,
    UserView,
)
from nexapod.protocol.v1.releases import (
    ReleaseDocument,
    ReleaseList,
    ReleaseManifestFile,
    ReleaseView,
)

PURPOSE_USER = "nexapod.user.v1"
PURPOSE_NODE = "nexapod.node.v1"
PURPOSE_NODE_AUTHORIZATION = "nexapod.node_authorization.v1"
PURPOSE_RESULT = "nexapod.result.v1"
PURPOSE_CHECKPOINT = "nexapod.checkpoint.v1"
PURPOSE_CHALLENGE_ANSWER = "nexapod.challenge_answer.v1"

__all__ = [
    "UnitLease",
    "UnitView",
    "PURPOSE_CHECKPOINT",
    "PURPOSE_CHALLENGE_ANSWER",
    "CHALLENGE_STATUSES",
    "ChallengeAnswer",
    "ChallengeAnswerDocument",
    "ChallengeList",
    "ChallengeOutcome",
    "ChallengeView",
    "CheckpointDocument",
    "CheckpointUpload",
    "ComputeRecord",
    "ComputeRecordPage",
    "AccountView",
    "FailureReport",
    "GpuInfo",
    "HardwareProfile",
    "InputRef",
    "JOB_STATUSES",
    "JobList",
    "JobView",
    "LeaseGrant",
    "LeaseRequest",
    "LeaseResponse",
    "MgfDataset",
    "NeighbourView",
    "NodeContribution",
    "NodeDocument",
    "NodeView",
    "PURPOSE_NODE",
    "PURPOSE_NODE_AUTHORIZATION",
    "PURPOSE_RESULT",
    "PURPOSE_USER",
    "Problem",
    "RegisterNodeRequest",
    "RegisterUserRequest",
    "ReleaseDocument",
    "ReleaseList",
    "ReleaseManifestFile",
    "ReleaseView",
    "ResultAck",
    "ResultDocument",
    "ResultItem",
    "SpectrumNeighbours",
    "SubmitJobRequest",
    "SubmitResultsRequest",
    "SubmitResultsResponse",
    "SyntheticDataset",
    "TransferBatchRequest",
    "TransferBatchResponse",
    "TransferItem",
    "TransferOutcome",
    "TransferPage",
    "TransferView",
    "UnitFailure",
    "UserDocument",
    "UserView",
]
